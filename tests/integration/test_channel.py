"""The message channel (issue 17, item 5) against the real engine and redis-server: a lease of
an image with ``channel = true`` gets a private folder at /run/containerlease, the documented
responder (docs/examples/channel_responder.py, in the channel test image) answers ``send``, and
every way an exchange can fail is one line, exit 1. The container's side is hostile: a symlink
or a socket that is not the container's own gets nothing sent to it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from containerlease_tui.config import load_settings
from containerlease_tui.leases import Forbidden, LeaseService

pytestmark = pytest.mark.usefixtures("cleanup_containers")

PY = "/usr/bin/python3"
SILENT = "import socket,os,time\n" + (
    "p=os.environ['CONTAINERLEASE_CHANNEL']\n"
    "s=socket.socket(socket.AF_UNIX); s.bind(p); os.chmod(p,0o666); s.listen()\n"
    "keep=[]\n"
    "while True: keep.append(s.accept()[0])\n"
)
GARBAGE = (
    "import socket,os\n"
    "p=os.environ['CONTAINERLEASE_CHANNEL']\n"
    "s=socket.socket(socket.AF_UNIX); s.bind(p); os.chmod(p,0o666); s.listen()\n"
    "while True:\n"
    "    c=s.accept()[0]\n"
    "    try:\n"
    "        c.recv(65536) and c.sendall(b'hello, not json\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "    c.close()\n"
)


@pytest.fixture
def channel_image() -> str:
    image = os.environ.get("CONTAINERLEASE_TEST_CHANNEL_IMAGE")
    if not image:
        pytest.skip("CONTAINERLEASE_TEST_CHANNEL_IMAGE is not set (run through scripts/test)")
    return image


@pytest.fixture
def channels(tmp_path: Path) -> Path:
    return tmp_path / "channels"


@pytest.fixture
def ch_config(config_file: Path, channel_image: str, channels: Path, test_image: str) -> Path:
    text = config_file.read_text().replace(
        "[docker]\n", f'[docker]\nchannel_root = "{channels}"\n', 1
    )
    for name, cmd in (
        ("chan", [PY, "/responder.py"]),
        ("silent", [PY, "-c", SILENT]),
        ("garbage", [PY, "-c", GARBAGE]),
        ("deaf", ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]),
    ):
        text += f"""
[images.{name}]
ref = "{channel_image}"
hourly_rate = "0.01"
channel = true
cmd = {json.dumps(cmd)}
memory = "64m"
"""
    config_file.write_text(text)
    return config_file


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cl(ch_config: Path) -> Run:
    env = {**os.environ, "CONTAINERLEASE_CONFIG": str(ch_config)}

    def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "containerlease_tui", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _provision(cl: Run, image: str) -> str:
    done = cl("provision", image, "-d", "1h", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    lease_id = json.loads(done.stdout)["id"]
    assert isinstance(lease_id, str)
    return lease_id


def _status(cl: Run, lease_id: str) -> dict[str, object]:
    done = cl("status", lease_id, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def _wait_connected(cl: Run, lease_id: str, limit: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + limit
    while True:
        data = _status(cl, lease_id)
        if data.get("channel_state") == "connected":
            return data
        assert time.monotonic() < deadline, f"the responder never listened: {data}"
        time.sleep(0.2)


def _one_line(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_send_round_trip_with_the_documented_responder(cl: Run, channels: Path) -> None:
    lease_id = _provision(cl, "chan")
    folder = channels / lease_id
    # The root is the fence (0700, ours); the lease's folder is open to the container's user.
    assert stat.S_IMODE(os.lstat(channels).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o777
    data = _wait_connected(cl, lease_id)
    assert data["channel"] is True and data["channel_at"] is None

    done = cl("send", lease_id, '{"command": "ping"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "reply": "pong"}
    # Anything the program echoes reaches the terminal as JSON text, never as control.
    done = cl("send", lease_id, json.dumps({"x": "\x1b]52;c;aGk=\x07\x9b31m"}))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x9b" not in done.stdout and "\x07" not in done.stdout
    assert json.loads(done.stdout) == {"ok": True, "echo": {"x": "\x1b]52;c;aGk=\x07\x9b31m"}}

    data = _status(cl, lease_id)
    assert data["channel_state"] == "connected" and isinstance(data["channel_at"], str)
    shown = cl("status", lease_id)
    assert "channel: connected  last message:" in shown.stdout
    events = cl("events", "--lease", lease_id, "--type", "message", "--json")
    assert events.returncode == 0, events.stderr
    assert [json.loads(x)["detail"] for x in events.stdout.splitlines()] == ["replied"] * 2

    assert cl("rm", lease_id).returncode == 0
    assert not folder.exists()  # removed with the lease


@pytest.mark.parametrize(
    ("image", "args", "text"),
    [
        ("silent", ["--timeout", "1s"], "no reply within 1s"),
        ("garbage", [], "the reply is not JSON"),
        ("deaf", [], "no channel: nothing listens on /run/containerlease/channel.sock"),
    ],
)
def test_a_failed_exchange_is_one_line(cl: Run, image: str, args: list[str], text: str) -> None:
    lease_id = _provision(cl, image)
    if image != "deaf":
        _wait_connected(cl, lease_id)
    else:
        assert _status(cl, lease_id)["channel_state"] == "absent"
    started = time.monotonic()
    done = cl("send", lease_id, '{"command": "ping"}', *args)
    _one_line(done, 1, text)
    assert time.monotonic() - started < 30


def test_bad_input_is_refused_and_sends_nothing(cl: Run, ch_config: Path) -> None:
    lease_id = _provision(cl, "chan")
    _wait_connected(cl, lease_id)
    _one_line(cl("send", lease_id, "{not json"), 2, "invalid message: not JSON")
    _one_line(cl("send", lease_id, "{}", "--timeout", "soon"), 2, "invalid timeout")
    _one_line(cl("send", lease_id, "{}", "--timeout", "2h"), 2, "timeout must be")
    _one_line(cl("send", lease_id, json.dumps("x" * 70_000)), 2, "message too long")
    plain = json.loads(cl("provision", "busybox", "-d", "1h", "--wait", "--json").stdout)["id"]
    _one_line(cl("send", plain, "{}"), 2, "has no message channel")
    _one_line(cl("send", "nosuchlease", "{}"), 2, "nosuchlease")
    assert _status(cl, lease_id)["channel_at"] is None  # nothing was sent


async def test_another_users_lease_is_refused(
    cl: Run, ch_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease_id = _provision(cl, "chan")
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(ch_config))
    bob = LeaseService.open(load_settings(), user="cl-bob")
    try:
        with pytest.raises(Forbidden):
            await bob.send(lease_id, {"command": "ping"})
    finally:
        await bob.close()


@pytest.fixture
def host_listener(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A unix socket on the host, outside any container, recording what reaches it."""
    path = tmp_path / "victim.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chmod(path, 0o666)
    server.listen()
    server.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    got.append(conn.recv(65536))
                    conn.sendall(b'{"stolen": true}\n')
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, got
    stop.set()
    thread.join(5)
    server.close()


def test_a_symlink_to_a_host_socket_gets_nothing(
    cl: Run, host_listener: tuple[Path, list[bytes]]
) -> None:
    """The container swaps its socket for a symlink to another socket on the host (the
    engine's, another user's agent): the link is never followed."""
    victim, got = host_listener
    lease_id = _provision(cl, "deaf")
    made = cl("exec", lease_id, "--", "ln", "-sf", str(victim), "/run/containerlease/channel.sock")
    assert made.returncode == 0, made.stderr
    _one_line(cl("send", lease_id, '{"secret": 1}'), 1, "is not a socket")
    assert _status(cl, lease_id)["channel_state"] == "absent"
    assert got == []


def test_a_socket_not_of_the_container_gets_nothing(
    cl: Run, channels: Path, host_listener: tuple[Path, list[bytes]]
) -> None:
    """A real socket in the folder whose listener is not in the lease's container (what a
    swap between our check and our connect would reach): refused after connecting, before a
    byte is sent, by the peer's cgroup."""
    _victim, got = host_listener
    lease_id = _provision(cl, "deaf")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(channels / lease_id / "channel.sock"))
    server.listen()
    accepted: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            try:
                accepted.append(conn.recv(65536))
            except OSError:
                accepted.append(b"?")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        done = cl("send", lease_id, '{"secret": 1}')
        _one_line(done, 1, "is not in the lease's container")
        thread.join(10)
        assert accepted == [b""]  # it connected, then closed without sending anything
    finally:
        server.close()
    assert got == []


def test_the_reaper_removes_the_folder_with_the_lease(cl: Run, channels: Path) -> None:
    done = cl("provision", "chan", "-d", "2s", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    lease_id = json.loads(done.stdout)["id"]
    assert (channels / lease_id).is_dir()
    deadline = time.monotonic() + 60
    while (channels / lease_id).exists():
        assert time.monotonic() < deadline, "the reaper left the channel folder"
        reaped = cl("--reaper", "--once")
        assert reaped.returncode == 0, reaped.stderr
        time.sleep(0.5)
    assert _status(cl, lease_id)["status"] == "expired"


def test_a_folder_left_by_someone_elses_reaper_goes_at_the_next_channel_lease(
    cl: Run, channels: Path
) -> None:
    """Direct mode, another user's reaper removed a lease of ours: it cannot reach our root,
    so the folder stays until our next channel lease sweeps the ones whose lease is over. A
    folder whose record is missing stays while a lease could still be running (adoption)."""
    first = _provision(cl, "deaf")
    assert cl("rm", first).returncode == 0
    channel_folder = channels / first
    channel_folder.mkdir(mode=0o777)  # as if someone else's reaper had removed the lease
    unknown = channels / "zz99zz99"  # no record: perhaps lost, and about to be adopted
    unknown.mkdir()
    old = channels / "yy88yy88"  # no record, older than any lease may live
    old.mkdir()
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    second = _provision(cl, "deaf")
    assert (channels / second).is_dir()
    assert not channel_folder.exists() and not old.exists()
    assert unknown.is_dir()
