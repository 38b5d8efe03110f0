"""Issue 16's acceptance: no redis-server on PATH and no Redis URL configured, and the package's
own commands still provision, list, remove and reap leases against the private engine, through
the embedded store they start themselves; it is shared, survives `kill -9`, and a configured URL
wins over it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import pytest
import redis

from containerlease_tui.embedded import StorePaths

pytestmark = pytest.mark.usefixtures("cleanup_containers")


def _command() -> list[str]:
    """The installed console script when there is one, else ``python -m``."""
    script = Path(sys.executable).parent / "containerlease"
    return [str(script)] if script.exists() else [sys.executable, "-m", "containerlease_tui"]


class Bare:
    """A user with Docker but no Redis: no redis-server or valkey-server on PATH, no URL."""

    def __init__(self, home: Path, config: Path) -> None:
        self.home = home
        empty_bin = home / "bin"
        empty_bin.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith("CONTAINERLEASE_") and not k.startswith("XDG_")
        }
        self.env.update(
            HOME=str(home),
            XDG_STATE_HOME=str(home / "state"),
            XDG_CONFIG_HOME=str(home / "config"),
            PATH=str(empty_bin),
            CONTAINERLEASE_CONFIG=str(config),
        )
        assert shutil.which("redis-server", path=self.env["PATH"]) is None
        assert shutil.which("valkey-server", path=self.env["PATH"]) is None
        self.paths = StorePaths(home / "state" / "containerlease" / "store")

    def __call__(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_command(), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> object:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def server_pid(self) -> int:
        info = self.json("store", "status")
        assert isinstance(info, dict) and info["running"] is True, info
        pid = info["pid"]
        assert isinstance(pid, int)
        return pid


@pytest.fixture
def bare(config_file: Path, redis_url: str) -> Iterator[Bare]:
    # A short folder (a unix socket's path is limited to ~100 bytes) of its own per test.
    home = Path(tempfile.mkdtemp(prefix="cl-emb-"))
    config = home / "config.toml"
    lines = config_file.read_text().splitlines()
    config.write_text("\n".join(x for x in lines if x != f'url = "{redis_url}"') + "\n")
    assert "[redis]" in config.read_text() and redis_url not in config.read_text()
    user = Bare(home, config)
    try:
        yield user
    finally:
        user("store", "stop", timeout=30)
        with contextlib.suppress(OSError, ValueError):  # whatever the test left, by pid
            os.kill(int(user.paths.pidfile.read_text()), signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def _containers(docker_url: str, lease_id: str) -> list[str]:
    import asyncio

    async def listing() -> list[str]:
        docker = aiodocker.Docker(url=docker_url)
        try:
            found = await docker.containers.list(
                all=True, filters={"label": [f"containerlease.lease={lease_id}"]}
            )
            return [c.id for c in found]
        finally:
            await docker.close()

    return asyncio.run(listing())


def _wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return  # dead, waiting for its (init) parent to reap it
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive after {timeout}s")


def test_provision_list_rm_and_reap_with_no_redis_installed(bare: Bare, docker_url: str) -> None:
    assert not bare.paths.root.exists()
    lease = bare.json("provision", "busybox", "--duration", "2s", "--wait")
    assert isinstance(lease, dict) and lease["status"] == "running"
    kept = bare.json("provision", "busybox", "--duration", "20m", "--name", "kept", "--wait")
    assert isinstance(kept, dict)

    # The store it started: private folder and socket, no TCP, persistence on, detached.
    root = bare.paths.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(bare.paths.socket.stat().st_mode) == 0o600
    client = redis.Redis(unix_socket_path=str(bare.paths.socket), decode_responses=True)
    try:
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()
    pid = bare.server_pid()
    assert os.getsid(pid) == pid  # a session of its own: a terminal's ^C or hangup misses it

    doctor = bare("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"redis:  embedded store at {root}" in doctor.stdout, doctor.stdout

    listed = bare.json("ls")
    assert isinstance(listed, list) and {x["id"] for x in listed} == {lease["id"], kept["id"]}
    deadline = time.monotonic() + 60
    status = "running"
    while time.monotonic() < deadline:
        bare("--reaper", "--once")
        (row,) = [x for x in bare.json("ls") if x["id"] == lease["id"]]  # type: ignore[attr-defined]
        status = row["status"]
        if status == "expired":
            break
        time.sleep(0.3)
    assert status == "expired"
    assert _containers(docker_url, str(lease["id"])) == []

    removed = bare("rm", "kept")
    assert removed.returncode == 0, removed.stderr
    (row,) = [x for x in bare.json("ls") if x["id"] == kept["id"]]  # type: ignore[attr-defined]
    assert row["status"] == "released"
    assert _containers(docker_url, str(kept["id"])) == []

    stopped = bare("store", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    _wait_gone(pid)
    assert "not running" in bare("store", "status").stdout
    again = bare("store", "stop")
    assert again.returncode == 0 and "not running" in again.stdout


def test_two_processes_start_and_share_one_store(bare: Bare) -> None:
    # Both start at once with no server running: the start lock makes them share one.
    racers = [
        subprocess.Popen(
            [*_command(), "ls", "--json"],
            env=bare.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        assert json.loads(out) == []
    pid = bare.server_pid()
    servers = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(bare.paths.socket).encode() in _cmdline(p)
    ]
    assert [int(p.name) for p in servers] == [pid]

    lease = bare.json("provision", "busybox", "--duration", "20m", "--wait")
    assert isinstance(lease, dict)
    # A second terminal: another process sees the same lease, through the same server.
    listed = bare.json("ls")
    assert isinstance(listed, list) and [x["id"] for x in listed] == [lease["id"]]
    assert bare.server_pid() == pid


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_the_store_survives_kill_9(bare: Bare) -> None:
    lease = bare.json("provision", "busybox", "--duration", "20m", "--name", "keep", "--wait")
    assert isinstance(lease, dict)
    pid = bare.server_pid()
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    # The next command starts it again; the append-only file brings the lease back.
    listed = bare.json("ls")
    assert isinstance(listed, list)
    assert [(x["id"], x["status"]) for x in listed] == [(lease["id"], "running")]
    assert bare.server_pid() != pid
    extended = bare.json("extend", "keep", "--by", "5m")
    assert isinstance(extended, dict) and extended["extensions"] == 1


def test_a_configured_url_wins(bare: Bare, redis_url: str, key_prefix: str) -> None:
    env = {"CONTAINERLEASE_REDIS_URL": redis_url}
    done = bare("provision", "busybox", "--duration", "20m", "--wait", "--json", env=env)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.exists(f"{key_prefix}:lease:{made['id']}") == 1
    finally:
        client.close()
    doctor = bare("doctor", "--json", env=env)
    report = json.loads(doctor.stdout)
    assert report["store"]["kind"] == "configured" and report["store"]["path"] is None
    assert not bare.paths.socket.exists()  # no embedded store was started
    status = bare("store", "status", "--json", env=env)
    assert json.loads(status.stdout)["used"] is False
    # In the file too (not only the environment).
    config = Path(bare.env["CONTAINERLEASE_CONFIG"])
    config.write_text(config.read_text().replace("[redis]\n", f'[redis]\nurl = "{redis_url}"\n'))
    listed = bare.json("ls")
    assert isinstance(listed, list) and [x["id"] for x in listed] == [made["id"]]
    assert not bare.paths.socket.exists()
