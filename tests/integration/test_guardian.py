"""No lease is left without an enforcer: with no reaper alive, quitting the app, hanging up its
terminal, or making a lease from the CLI starts the guardian reaper, which removes the container
at its deadline and then leaves by itself. Real engine, real Redis, the app in a real tmux."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiodocker
import pytest
import redis

from tests.tui.test_tmux import Tmux

pytestmark = pytest.mark.usefixtures("cleanup_containers")

# The target: the container is gone at most this long after its deadline.
TARGET_LAG = 2.0


def _wait(condition: Callable[[], bool], timeout: float, what: str, pause: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)


def _container_exists(docker_url: str, cid: str) -> bool:
    async def check() -> bool:
        client = aiodocker.Docker(url=docker_url)
        try:
            await client.containers.container(cid).show()
            return True
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            raise
        finally:
            await client.close()

    return asyncio.run(check())


def _process_gone(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (a detached process's parent is init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _app_pids(config: Path) -> set[int]:
    """Pids of the app processes run with ``config`` (not its guardian, not the shell)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"containerlease_tui" in argv
            and b"_guardian" not in argv
            and f"CONTAINERLEASE_CONFIG={config}".encode() in environ
        ):
            pids.add(int(proc.name))
    return pids


def _guardian_pids(log: Path) -> set[int]:
    """Pids of the guardians that logged their start in ``log``."""
    if not log.exists():
        return set()
    pids = set()
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("action") == "config":
            pids.add(int(record["pid"]))
    return pids


@pytest.fixture
def guarded_config(config_file: Path, tmp_path: Path) -> Path:
    """The test config with the guardian on (as it is by default)."""
    path = tmp_path / "guarded.toml"
    path.write_text(config_file.read_text().replace("guardian = false", "guardian = true"))
    return path


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "containerlease"


def _cli(config: Path, *args: str, guardian: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONTAINERLEASE_CONFIG": str(config),
        "CONTAINERLEASE_REAPER_GUARDIAN": "true" if guardian else "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "containerlease_tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _deadline(lease: dict[str, object]) -> float:
    return datetime.fromisoformat(str(lease["expires_at"])).timestamp()


@pytest.mark.timed
def test_a_cli_lease_with_no_reaper_gets_a_guardian_that_reaps_it_and_leaves(
    guarded_config: Path, state_dir: Path, docker_url: str
) -> None:
    # Long enough that the guardian is surely up before the deadline, even on a loaded box.
    done = _cli(guarded_config, "provision", "busybox", "-d", "20s", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    lease = json.loads(done.stdout)  # stdout stays pure JSON: the notice is on stderr
    assert "no reaper was running: started a guardian reaper" in done.stderr
    log = state_dir / "guardian.log"
    assert str(log) in done.stderr
    _wait(lambda: bool(_guardian_pids(log)), 20, "the guardian to log its start")

    # A second lease while the guardian runs: its heartbeat counts, no second guardian.
    def beating() -> bool:
        report = json.loads(_cli(guarded_config, "doctor", "--json").stdout)
        return report["reaper"]["alive"] is True

    _wait(beating, 20, "the guardian's heartbeat", pause=0.2)
    again = _cli(guarded_config, "provision", "busybox", "-d", "20s", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert time.time() < _deadline(lease) - 1, "the guardian came up too late: the test is moot"

    cid = str(lease["docker_id"])
    _wait(lambda: not _container_exists(docker_url, cid), 30, "the container to be reaped")
    lag = time.time() - _deadline(lease)
    print(f"\nguardian (CLI): container gone {lag:.2f}s after its deadline")
    assert lag <= TARGET_LAG + 0.2, f"removed {lag:.2f}s after its deadline"
    (pid,) = _guardian_pids(log)
    _wait(lambda: _process_gone(pid), 60, "the guardian to leave once no lease is active")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("action") == "leave" and r.get("reason") == "idle" for r in records), records
    assert all("Traceback" not in line for line in log.read_text().splitlines())
    assert (log.stat().st_mode & 0o777) == 0o600
    assert (log.parent.stat().st_mode & 0o777) == 0o700


def test_with_the_guardian_off_the_cli_warns_that_nothing_will_reap(
    config_file: Path, state_dir: Path
) -> None:
    done = _cli(config_file, "provision", "busybox", "-d", "1h", "--json", guardian=False)
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)
    assert done.stderr.strip().startswith("warning: no reaper is running"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (state_dir / "guardian.log").exists()


def test_a_running_reaper_means_no_guardian(
    guarded_config: Path, state_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "CONTAINERLEASE_CONFIG": str(guarded_config)}
    reaper = subprocess.Popen(
        [sys.executable, "-m", "containerlease_tui", "--reaper"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reaper.stderr is not None

        def alive() -> bool:
            done = _cli(guarded_config, "doctor", "--json")
            return json.loads(done.stdout)["reaper"]["alive"] is True

        _wait(alive, 30, "the headless reaper's heartbeat", pause=0.2)
        done = _cli(guarded_config, "provision", "busybox", "-d", "1h", "--json")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert not (state_dir / "guardian.log").exists()
    finally:
        reaper.terminate()
        reaper.wait(timeout=30)


@pytest.mark.timed
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("leave", ["q", "hang-up"])
def test_the_app_hands_its_leases_to_a_guardian_when_it_goes(
    leave: str,
    guarded_config: Path,
    tmp_path: Path,
    repo_root: Path,
    docker_url: str,
    redis_url: str,
    key_prefix: str,
) -> None:
    state = tmp_path / "state"
    env = {
        key: value
        for key, value in os.environ.items()
        # COLUMNS/LINES (set by pytest-xdist's workers) would outrank the pane's real size.
        if not key.startswith(("CONTAINERLEASE_", "TMUX", "PYTEST", "TEXTUAL"))
        and key not in ("COLUMNS", "LINES")
    }
    env.update(
        CONTAINERLEASE_CONFIG=str(guarded_config),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        XDG_STATE_HOME=str(state),
        TERM="xterm-256color",
        LANG=os.environ.get("LANG") or "C.UTF-8",
    )
    tmux = Tmux(env)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        app = f"{shlex.quote(sys.executable)} -m containerlease_tui"
        tmux.start(120, 40, f"cd {shlex.quote(str(repo_root))} && {app}", tmp_path / "term.log")
        # The app's in-app reaper is the only one.
        _wait(lambda: bool(client.smembers(f"{key_prefix}:reapers")), 30, "the app's reaper")
        done = _cli(guarded_config, "provision", "busybox", "-d", "12s", "--wait", "--json")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # the app's reaper is alive: no guardian from the CLI
        lease = json.loads(done.stdout)
        _wait(lambda: str(lease["name"]) in tmux.capture(), 20, "the lease in the app")
        apps = _app_pids(guarded_config)
        assert len(apps) == 1, apps
        if leave == "q":
            tmux.send("q")
        else:
            tmux.kill()  # the terminal goes away: SIGHUP to the app
        _wait(lambda: not tmux.alive(), 20, "the app to end")
        assert time.time() < _deadline(lease) - 1, "the app took too long to go: test is moot"
        log = state / "containerlease" / "guardian.log"
        _wait(lambda: bool(_guardian_pids(log)), 20, "a guardian to start")
        cid = str(lease["docker_id"])
        _wait(lambda: not _container_exists(docker_url, cid), 40, "the container to be reaped")
        lag = time.time() - _deadline(lease)
        print(f"\nguardian ({leave}): container gone {lag:.2f}s after its deadline")
        assert lag <= TARGET_LAG + 0.2, f"removed {lag:.2f}s after its deadline"
        # The process itself, not only its terminal: a closed terminal must not leave an app
        # hung on writes nobody reads (one per dropped SSH session on a shared box).
        _wait(lambda: all(_process_gone(pid) for pid in apps), 20, "the app process to exit")
        (pid,) = _guardian_pids(log)
        _wait(lambda: _process_gone(pid), 30, "the guardian to leave")
    finally:
        tmux.kill()
        client.close()
