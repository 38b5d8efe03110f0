"""The lease daemon against the real engine and Redis, with real OS users as its clients.

The daemon (``containerlease serve``) runs as this test's user, with the private engine's
credentials and the Redis URL. ``cl-alice``, ``cl-bob`` and ``cl-admin`` run the CLI through
``setpriv`` with their own uid and gid and **only** the socket's group: not ``docker``, and a
config that names nothing but the daemon's socket. Everything they do goes through the daemon,
which knows them by the uid the kernel reports for the connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_security import USERS, Run, _user_python

pytestmark = pytest.mark.usefixtures("cleanup_containers")
REPO = Path(__file__).resolve().parents[2]


def _wait(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` until true (condition wait, generous bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


@dataclass
class Daemon:
    folder: Path
    socket: Path
    config: Path
    client_config: Path
    group: str
    gid: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, *extra: str) -> None:
        self.log = self.folder / f"daemon-{secrets.token_hex(2)}.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "containerlease_tui", "serve", *extra],
                env={**os.environ, "CONTAINERLEASE_CONFIG": str(self.config)},
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd="/",
            )
        proc = self.proc
        _wait(lambda: _answers(self.socket) or proc.poll() is not None, 30, "the daemon")
        assert proc.poll() is None, self.log.read_text()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def log_lines(self) -> list[dict[str, object]]:
        assert self.log is not None
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def as_user(
        self, user: str, *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
    ) -> Run:
        """``user`` runs the CLI with only the socket's group (no ``docker``)."""
        done = subprocess.run(
            self.argv(user, *args, env=env),
            input=stdin,
            capture_output=True,
            timeout=120,
            cwd="/",
        )
        return Run(done.returncode, done.stdout.decode(), done.stderr.decode())

    def argv(self, user: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
        """The command line by which ``user`` runs the CLI (see :meth:`as_user`)."""
        python = _user_python()
        entry = pwd.getpwnam(user)
        clean = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": python.path,
            "PYTHONDONTWRITEBYTECODE": "1",
            "CONTAINERLEASE_CONFIG": str(self.client_config),
            "HOME": "/",
            "USER": "root",
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        return [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            f"--groups={self.gid}",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in clean.items()),
            python.executable,
            "-m",
            "containerlease_tui",
            *args,
        ]

    def _snippet(self, user: str, code: str) -> Run:
        """Run a Python snippet as ``user`` (raw requests to the socket)."""
        entry = pwd.getpwnam(user)
        done = subprocess.run(
            [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                f"--groups={self.gid}",
                "--",
                "env",
                "-i",
                "PATH=/usr/bin:/bin",
                _user_python().executable,
                "-I",
                "-",
            ],
            input=code.encode(),
            capture_output=True,
            timeout=60,
            cwd="/",
        )
        return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def _raw_request(path: Path, request: bytes) -> str:
    """Python code that sends ``request`` on the socket and prints the answer."""
    return (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(path)!r})\n"
        f"s.sendall({request!r})\n"
        "out=b''\n"
        "while True:\n"
        "    d=s.recv(65536)\n"
        "    if not d: break\n"
        "    out+=d\n"
        "sys.stdout.write(out.decode())\n"
    )


@pytest.fixture
def daemon(config_file: Path) -> Iterator[Daemon]:
    if os.getuid() != 0 or not shutil.which("setpriv") or not shutil.which("groupadd"):
        pytest.skip("real OS users need root, setpriv and groupadd (scripts/test runs as root)")
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.fail(f"OS user {user} is missing: scripts/test creates it")
    group = f"cl-lease{secrets.token_hex(3)}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    import grp

    gid = grp.getgrnam(group).gr_gid
    work = os.environ.get("CONTAINERLEASE_TEST_WORKDIR", "/tmp")
    folder = Path(tempfile.mkdtemp(prefix="cl-daemon-", dir=work))
    folder.chmod(0o755)
    sock = folder / "run" / "api.sock"
    config = folder / "daemon.toml"
    config.write_text(
        config_file.read_text()
        + f'\n[security]\nadmins = ["cl-admin"]\n\n[service]\nsocket = "{sock}"\n'
        f'socket_group = "{group}"\nsocket_mode = "0660"\n'
    )
    config.chmod(0o600)  # the Redis URL and the engine: the daemon's alone
    client = folder / "client.toml"
    client.write_text(f'[service]\nurl = "unix://{sock}"\n')
    client.chmod(0o644)
    found = Daemon(folder, sock, config, client, group, gid)
    try:
        found.start()
        yield found
    finally:
        if found.proc is not None:
            found.proc.kill()
            found.proc.wait()
        subprocess.run(["groupdel", group], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _json(run: Run) -> dict[str, object]:
    assert run.code == 0, run
    out: dict[str, object] = json.loads(run.out)
    return out


def _refused(run: Run, owner: str) -> bool:
    one = len(run.err.strip().splitlines()) == 1
    return run.code == 1 and f"belongs to {owner}" in run.err and one and "Traceback" not in run.err


@pytest.mark.timeout(300)
def test_users_lease_through_the_daemon_without_engine_access(daemon: Daemon) -> None:
    # The client holds nothing: its config names only the socket, and it is not in `docker`.
    assert "redis" not in daemon.client_config.read_text()
    groups = daemon._snippet("cl-alice", "import os; print(os.getgroups())")
    assert groups.code == 0 and json.loads(groups.out) == [daemon.gid], groups

    lease = _json(daemon.as_user("cl-alice", "provision", "busybox", "--wait", "--json"))
    assert lease["owner"] == "cl-alice" and lease["status"] == "running"  # $USER said root
    lid = str(lease["id"])

    doctor = daemon.as_user("cl-alice", "doctor")
    assert doctor.code == 0, doctor
    assert f"client of the daemon at unix://{daemon.socket}" in doctor.out
    assert "user:   cl-alice\n" in doctor.out and "reaper alive" in doctor.out

    listed = daemon.as_user("cl-bob", "ls", "--all", "--json")
    assert listed.code == 0 and lid in listed.out, listed
    assert lid not in daemon.as_user("cl-bob", "ls", "--json").out  # bob's own: none

    for args in (
        ["rm", lid],
        ["extend", lid, "--by", "5m"],
        ["logs", lid],
        ["stop", lid],
        ["start", lid],
        ["restart", lid],
        ["status", lid],
        ["exec", lid, "--", "true"],
    ):
        assert _refused(daemon.as_user("cl-bob", *args), "cl-alice"), args


@pytest.mark.timeout(300)
def test_the_owner_runs_the_whole_lifecycle_through_the_daemon(daemon: Daemon) -> None:
    lid = str(_json(daemon.as_user("cl-alice", "provision", "busybox", "--wait", "--json"))["id"])
    status = _json(daemon.as_user("cl-alice", "status", lid, "--json"))
    assert (status["status"], status["state"]) == ("running", "running")
    ran = daemon.as_user("cl-alice", "exec", lid, "--", "sh", "-c", "echo in-$((6*7)); exit 3")
    assert (ran.code, ran.out) == (3, "in-42\n"), ran
    logs = daemon.as_user("cl-admin", "logs", lid, "--tail", "3")
    assert logs.code == 0 and "tick" in logs.out, logs
    extended = _json(daemon.as_user("cl-admin", "extend", lid, "--by", "5m", "--json"))
    assert extended["extensions"] == 1
    for step, state in (("stop", "exited"), ("start", "running"), ("restart", "running")):
        assert daemon.as_user("cl-alice", step, lid).code == 0, step
        assert _json(daemon.as_user("cl-alice", "status", lid, "--json"))["state"] == state
    # The shell with piped stdin (no TTY): the input's end reaches it, the exit code comes back.
    piped = daemon.as_user("cl-alice", "shell", lid, stdin=b"echo piped-$((6*7))\nexit 6\n")
    assert (piped.code, piped.out) == (6, "piped-42\n"), piped
    assert _refused(daemon.as_user("cl-bob", "shell", lid, stdin=b"exit 0\n"), "cl-alice")
    assert daemon.as_user("cl-admin", "shell", lid, stdin=b"exit 0\n").code == 0
    assert daemon.as_user("cl-alice", "rm", lid).code == 0
    assert _json(daemon.as_user("cl-alice", "status", lid, "--json"))["status"] == "released"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.timeout(300)
def test_the_interactive_shell_through_the_daemon_in_tmux(daemon: Daemon) -> None:
    """``containerlease shell`` as cl-alice (no Docker access) on a real terminal: what she
    types runs in her container, the remote TTY has the local size, her exit code comes back;
    cl-bob gets one line of refusal and no terminal."""
    from tests.tui.test_tmux import Tmux

    lid = str(_json(daemon.as_user("cl-alice", "provision", "busybox", "--wait", "--json"))["id"])
    status = daemon.folder / f"shell-{secrets.token_hex(2)}.status"
    env = {
        k: v
        for k, v in os.environ.items()
        # COLUMNS/LINES (set by pytest-xdist's workers) would outrank the pane's real size.
        if not k.startswith(("TMUX", "CONTAINERLEASE_")) and k not in ("COLUMNS", "LINES")
    }
    tmux = Tmux({**env, "TERM": "xterm-256color"})
    argv = daemon.argv("cl-alice", "shell", lid, env={"TERM": "xterm-256color"})
    command = " ".join(shlex.quote(a) for a in argv)

    def marker() -> bool:
        found = daemon.as_user("cl-alice", "exec", lid, "--", "cat", "/tmp/marker")
        return found.out == "marker-42\n"

    try:
        tmux.start(
            100, 30, f"{command}; echo $? > {shlex.quote(str(status))}", status.with_suffix(".log")
        )
        _wait(lambda: any(c in tmux.capture() for c in "#$") or not tmux.alive(), 60, "a prompt")
        assert tmux.alive(), tmux.capture()
        tmux.send(
            "stty size > /tmp/size; tty > /tmp/tty; echo marker-$((6*7)) > /tmp/marker", "Enter"
        )
        _wait(marker, 30, "the marker")
        tmux.send("exit 7", "Enter")
        _wait(lambda: status.exists() and status.read_text().strip() != "", 30, "the exit status")
        assert status.read_text().strip() == "7"
    finally:
        tmux.kill()
    size = daemon.as_user("cl-alice", "exec", lid, "--", "cat", "/tmp/size", "/tmp/tty")
    assert size.out.splitlines()[0] == "30 100", size  # the remote TTY has the local size
    assert size.out.splitlines()[1].startswith("/dev/pts/"), size
    refused = daemon.as_user("cl-bob", "shell", lid)
    assert _refused(refused, "cl-alice"), refused
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert not any("Traceback" in str(line) for line in daemon.log_lines())


def test_nothing_the_client_sends_changes_who_it_is(daemon: Daemon) -> None:
    bob = pwd.getpwnam("cl-bob")
    bobs = _json(daemon.as_user("cl-bob", "provision", "busybox", "--json"))
    lies = {
        "USER": "cl-bob",
        "LOGNAME": "cl-admin",
        "SUDO_UID": str(bob.pw_uid),
        "SUDO_USER": "cl-bob",
        "CONTAINERLEASE_SECURITY_ADMINS": '["cl-alice"]',
        "CONTAINERLEASE_SECURITY_SERVICE_USER": "cl-alice",
    }
    mine = _json(daemon.as_user("cl-alice", "provision", "busybox", "--json", env=lies))
    assert mine["owner"] == "cl-alice"
    assert _refused(daemon.as_user("cl-alice", "rm", str(bobs["id"]), env=lies), "cl-bob")
    doctor = daemon.as_user("cl-alice", "doctor", "--json", env=lies)
    report = json.loads(doctor.out)
    assert (report["user"], report["admin"], report["mode"]) == ("cl-alice", False, "client")

    # Raw HTTP with a forged owner in the body and identity headers: ignored.
    body = json.dumps({"image": "busybox", "owner": "cl-bob", "user": "cl-admin"}).encode()
    request = (
        b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-User: cl-bob\r\nX-Remote-User: cl-admin\r\nAuthorization: Basic Y2wtYm9iOg==\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    raw = daemon._snippet("cl-alice", _raw_request(daemon.socket, request))
    assert raw.code == 0 and " 201 " in raw.out.splitlines()[0], raw
    forged = json.loads(raw.out.split("\r\n\r\n", 1)[1])
    assert forged["owner"] == "cl-alice"
    delete = (
        f"DELETE /v1/leases/{bobs['id']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "X-User: cl-bob\r\n\r\n"
    ).encode()
    refused = daemon._snippet("cl-alice", _raw_request(daemon.socket, delete))
    assert " 403 " in refused.out.splitlines()[0], refused
    answer = json.loads(refused.out.split("\r\n\r\n", 1)[1])
    assert answer["error"] is True and answer["error_type"] == "Forbidden"
    assert set(answer) == {"error", "error_type", "message", "details", "timestamp"}
    assert _json(daemon.as_user("cl-bob", "status", str(bobs["id"]), "--json"))["owner"] == "cl-bob"


def test_bad_requests_get_a_typed_error_and_the_daemon_keeps_serving(daemon: Daemon) -> None:
    cases = {
        b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": " 404 ",
        b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 5\r\n\r\n{nope": " 400 ",
        b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 200000\r\n\r\n" + b"x" * 200_000: " 413 ",
        b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 2\r\n\r\n[]": " 400 ",
        b"DELETE /v1/leases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n": " 405 ",
    }
    for request, status in cases.items():
        out = daemon._snippet("cl-bob", _raw_request(daemon.socket, request))
        assert out.code == 0 and status in out.out.splitlines()[0], (request[:60], out)
        body = json.loads(out.out.split("\r\n\r\n", 1)[1])
        assert body["error"] is True and isinstance(body["error_type"], str), body
    garbage = daemon._snippet("cl-bob", _raw_request(daemon.socket, b"\x00\xffnot http\r\n\r\n"))
    assert garbage.code == 0 and " 400 " in garbage.out.splitlines()[0], garbage
    assert daemon.as_user("cl-bob", "ls").code == 0
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.log is not None and "Traceback" not in daemon.log.read_text()


def test_the_daemon_reaps_at_the_deadline(daemon: Daemon) -> None:
    # Under load the reaper may take the 2 s lease before `--wait` sees it settle (exit 1,
    # "removing right after starting"): the JSON still names the lease.
    made = daemon.as_user("cl-alice", "provision", "busybox", "-d", "2s", "--wait", "--json")
    assert made.code in (0, 1) and made.out.startswith("{"), made
    lid = str(json.loads(made.out)["id"])

    def expired() -> bool:
        status = daemon.as_user("cl-alice", "status", lid, "--json")
        return status.code == 0 and json.loads(status.out)["status"] == "expired"

    _wait(expired, 60, "the daemon's reaper to expire the lease")
    status = _json(daemon.as_user("cl-alice", "status", lid, "--json"))
    assert status["state"] != "running", status
    reaped = [x for x in daemon.log_lines() if x.get("lease") == lid]
    assert reaped, "the daemon's log names the reaped lease"


def test_daemon_down_then_back(daemon: Daemon) -> None:
    assert daemon.stop() == 0  # SIGTERM: a clean stop
    lines = daemon.log_lines()
    assert lines[-1]["msg"] == "daemon stopped"
    assert not daemon.socket.exists()
    down = daemon.as_user("cl-alice", "ls")
    assert down.code == 1 and len(down.err.strip().splitlines()) == 1, down
    assert "is not answering" in down.err and "Traceback" not in down.err
    daemon.start()
    assert daemon.as_user("cl-alice", "ls").code == 0


@pytest.mark.parametrize("problem", ["symlink", "world-writable", "foreign-owner", "not-a-socket"])
def test_an_unsafe_socket_path_is_refused(daemon: Daemon, problem: str) -> None:
    assert daemon.stop() == 0
    base = daemon.folder / problem
    base.mkdir(mode=0o755)
    sock = base / "run" / "api.sock"
    if problem == "symlink":
        (base / "elsewhere").mkdir(mode=0o755)
        (base / "run").symlink_to(base / "elsewhere")
    elif problem == "world-writable":
        (base / "run").mkdir()
        (base / "run").chmod(0o777)
    elif problem == "foreign-owner":
        (base / "run").mkdir(mode=0o755)
        bob = pwd.getpwnam("cl-bob")
        os.chown(base / "run", bob.pw_uid, bob.pw_gid)
    else:
        (base / "run").mkdir(mode=0o755)
        sock.write_text("not a socket")
    config = daemon.folder / f"unsafe-{problem}.toml"
    config.write_text(
        daemon.config.read_text().replace(f'socket = "{daemon.socket}"', f'socket = "{sock}"')
    )
    done = subprocess.run(
        [sys.executable, "-m", "containerlease_tui", "serve"],
        env={**os.environ, "CONTAINERLEASE_CONFIG": str(config)},
        capture_output=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 2, done
    lines = [json.loads(x) for x in done.stderr.decode().splitlines() if x.strip()]
    assert lines[-1]["msg"] == "refusing to start", lines
    assert "Traceback" not in done.stderr.decode()
    if problem == "not-a-socket":
        assert sock.read_text() == "not a socket"  # never replaced
    with contextlib.suppress(FileNotFoundError):
        assert not sock.is_socket()


@pytest.fixture
def channel_catalog(config_file: Path, tmp_path: Path) -> Path:
    """The daemon's catalog with an image whose leases get a message channel (the documented
    responder in the channel test image); requested before ``daemon``, which reads the file."""
    image = os.environ.get("CONTAINERLEASE_TEST_CHANNEL_IMAGE")
    if not image:
        pytest.skip("CONTAINERLEASE_TEST_CHANNEL_IMAGE is not set (run through scripts/test)")
    root = tmp_path / "channels"
    text = config_file.read_text().replace("[docker]\n", f'[docker]\nchannel_root = "{root}"\n')
    text += (
        f'\n[images.chan]\nref = "{image}"\nhourly_rate = "0.01"\nchannel = true\n'
        'cmd = ["/usr/bin/python3", "/responder.py"]\nmemory = "64m"\n'
    )
    config_file.write_text(text)
    return root


@pytest.mark.timeout(300)
def test_a_message_through_the_daemon(channel_catalog: Path, daemon: Daemon) -> None:
    """The daemon makes the folder and talks to the container; the owner (no engine access)
    sends and reads the reply; another user is refused before anything is sent."""
    lid = str(_json(daemon.as_user("cl-alice", "provision", "chan", "--wait", "--json"))["id"])
    assert (channel_catalog / lid).is_dir()
    deadline = time.monotonic() + 30
    while _json(daemon.as_user("cl-alice", "status", lid, "--json")).get("channel_state") != (
        "connected"
    ):
        assert time.monotonic() < deadline, "the responder never listened"
        time.sleep(0.2)
    sent = daemon.as_user("cl-alice", "send", lid, '{"command": "ping"}')
    assert (sent.code, json.loads(sent.out)) == (0, {"ok": True, "reply": "pong"}), sent
    assert _refused(daemon.as_user("cl-bob", "send", lid, '{"command": "ping"}'), "cl-alice")
    slow = daemon.as_user("cl-alice", "send", lid, "{}", "--timeout", "2h")
    assert slow.code == 2 and "timeout must be" in slow.err, slow
    assert daemon.as_user("cl-alice", "rm", lid).code == 0
    assert not (channel_catalog / lid).exists()
