"""The core never imports Textual: only ``containerlease_tui.tui`` may.

Checked in a fresh interpreter, since this test process has long since imported everything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

CORE = [
    "backoff",
    "channel",
    "config",
    "display",
    "durations",
    "errors",
    "models",
    "policy",
    "redact",
    "sanitize",
    "safefile",
    "embedded",
    "doctor",
    "logflow",
    "store",
    "store.keys",
    "store.scripts",
    "store.errors",
    "store.codec",
    "store.base",
    "store.transaction",
    "store.budget",
    "store.records",
    "store.deadlines",
    "store.events",
    "store.coordination",
    "store.protocol",
    "store.lease_store",
    "engine",
    "labels",
    "leases",
    "service",
    "service.base",
    "service.provisioning",
    "service.lifecycle",
    "service.containers",
    "service.volumes",
    "service.views",
    "service.reaper_control",
    "service.lease_service",
    "reaper",
    "service_api",
    "daemon.server",
    "daemon.client",
    "cli",
]
REQUIRED = {"config", "models", "durations"}

PROBE = """
import importlib, json, sys
name = sys.argv[1]
importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print(json.dumps(leaked))
"""


def _present(module: str) -> bool:
    return importlib.util.find_spec(f"containerlease_tui.{module}") is not None


def test_required_core_modules_exist() -> None:
    for module in REQUIRED:
        assert _present(module), f"containerlease_tui.{module} is missing"


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_not_import_textual(module: str) -> None:
    if module not in REQUIRED and not _present(module):
        pytest.skip(f"containerlease_tui.{module} does not exist yet")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, f"containerlease_tui.{module}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"containerlease_tui.{module} imports Textual: {leaked}"


def test_all_present_core_modules_together() -> None:
    present = [f"containerlease_tui.{m}" for m in CORE if _present(m)]
    code = (
        "import importlib, sys\n"
        f"for name in {present!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- CLI latency (issue 19): commands that only talk to Redis load no UI and no engine client --

HEAVY = ("textual", "aiodocker", "aiohttp")
"""What a command that never opens the app or talks to Docker must not import: together a third
or more of a short command's wall time."""

CLI_PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["containerlease", *args]
from containerlease_tui.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
print("\\n" + json.dumps({"code": code, "heavy": loaded}))
"""


def _redis_url() -> tuple[str, bool]:
    """The test Redis when scripts/test started one (the command then succeeds), else a port
    nothing listens on (the command fails with its one line, after the same imports)."""
    url = os.environ.get("CONTAINERLEASE_REDIS_URL")
    if url:
        return url, True
    return "redis://127.0.0.1:9/0", False


def _run_cli(args: list[str], tmp_path: Path) -> dict[str, object]:
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    url, _ = _redis_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERLEASE_")}
    env.update(
        CONTAINERLEASE_CONFIG=str(config),
        CONTAINERLEASE_REDIS_URL=url,
        CONTAINERLEASE_REDIS_KEY_PREFIX=f"layer{secrets.token_hex(4)}",
        CONTAINERLEASE_REDIS_SOCKET_TIMEOUT="2",
        CONTAINERLEASE_DOCKER_URL="unix:///nonexistent/docker.sock",
        CONTAINERLEASE_REAPER_GUARDIAN="false",
    )
    result = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "Traceback" not in result.stderr, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    found["stderr"] = result.stderr
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "--json"],
        ["ls", "--all"],
        ["extend", "nosuchlease", "--by", "1h"],
        ["_complete", "no"],
        ["--help"],
        ["ls", "--help"],
    ],
    ids=" ".join,
)
def test_redis_only_commands_load_no_ui_or_engine_client(args: list[str], tmp_path: Path) -> None:
    found = _run_cli(args, tmp_path)
    assert found["heavy"] == [], f"`containerlease {' '.join(args)}` imports {found['heavy']}"
    if args == ["ls", "--json"] and _redis_url()[1]:
        assert found["code"] == 0, found["stderr"]  # it really read the (empty) store


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """The check above can fail: a command that talks to Docker does load the engine client."""
    found = _run_cli(["images", "--json"], tmp_path)
    assert "aiodocker" in found["heavy"], found
