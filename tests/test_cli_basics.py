"""The installed command starts, and a broken config is one clear line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from containerlease_tui import __version__


def run_cli(
    tmp_path: Path, *args: str, config: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("CONTAINERLEASE_")}
    clean["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # never the developer's own config
    clean["COLUMNS"] = "100"
    if config is not None:
        clean["CONTAINERLEASE_CONFIG"] = str(config)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "containerlease_tui", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )


def test_help(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: containerlease" in result.stdout
    assert "Lease Docker containers" in result.stdout
    assert result.stderr == ""


def test_version(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"containerlease, version {__version__}"


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "containerlease"
    if not script.exists():
        pytest.skip("package not installed with its console script in this interpreter")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CONTAINERLEASE_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: containerlease" in result.stdout


BROKEN = {
    "syntax": ("[redis\nurl = \n", "invalid TOML"),
    "unterminated-string": ('[redis]\nurl = "redis://x\n', "invalid TOML"),
    "duplicate-key": ('[redis]\nurl = "a"\nurl = "b"\n', "invalid TOML"),
    "unknown-key": ('[redis]\nurll = "redis://x"\n', "redis.urll: unknown key"),
    "unknown-section": ("[colours]\nbg = 1\n", "colours: unknown key"),
    "wrong-type": ('[limits]\nmax_leases_per_user = "many"\n', "limits.max_leases_per_user"),
    "bad-duration": ('[limits]\nmax_duration = "forever"\n', "cannot parse duration"),
    "negative-rate": (
        '[images.x]\nref = "x:1"\nhourly_rate = "-1"\n',
        "images.x.hourly_rate: Input should be greater than or equal to 0",
    ),
    "inconsistent-limits": (
        '[limits]\nmin_duration = "2h"\n',
        "need min_duration <= default_duration <= max_duration",
    ),
}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("containerlease: config error in "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_config_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    text, problem = BROKEN[kind]
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    result = run_cli(tmp_path, "--help", config=path)
    assert_one_line_error(result, str(path), problem)


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = run_cli(tmp_path, "--help", config=path)
    assert_one_line_error(result, str(path), "file not found")


def test_broken_user_config_file(tmp_path: Path) -> None:
    path = tmp_path / "xdg" / "containerlease" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("this is not toml\n")
    result = run_cli(tmp_path, "--help")
    assert_one_line_error(result, str(path), "invalid TOML")


def test_bad_environment_value(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--help", CONTAINERLEASE_LIMITS_MAX_DURATION="bogus")
    assert_one_line_error(result, "environment", "limits.max_duration", "cannot parse duration")


def test_non_utf8_config_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[docker]\nnetwork = "caf\xe9"\n')
    result = run_cli(tmp_path, "--help", config=path)
    assert_one_line_error(result, str(path))
