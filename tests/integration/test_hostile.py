"""Hostile input, performed for real (issue 14): code planted where the user stands, terminal
controls in a container's output and in forged Redis records, a symlink planted where the log is
saved, and the small holes (status of anybody's lease, multi-line errors, rounded durations, the
documented Redis ACL).

The attackers and victims are the OS users ``cl-alice``, ``cl-bob`` and ``cl-admin`` of
``test_security.py`` (the same ``runuser`` harness); the app runs under tmux, and what it writes
to the terminal is read back byte for byte. Each user runs ContainerLease as an installed
``containerlease`` command does (a launcher script, so the script's folder, not the current
directory, is first on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from test_security import (  # the OS-user harness
    Run,
    _run_as,
    _user_python,
    make_shared_config,  # noqa: F401 - a fixture
    shared_config,  # noqa: F401 - a fixture
)

from containerlease_tui.config import Settings
from containerlease_tui.models import Lease, LeaseStatus, utcnow
from containerlease_tui.store import LeaseStore

pytestmark = pytest.mark.usefixtures("cleanup_containers")
REPO = Path(__file__).resolve().parents[2]

# --- what a hostile container prints / a forged record holds ---------------------------------

# (label, printf text): every kind of sequence a terminal acts on. printf's octal escapes:
# \033 ESC, \007 BEL, \302\233 U+009B (C1 CSI), \342\200\256 U+202E (right-to-left override).
PRINTED = [
    ("osc52", r"\033]52;c;cm0gLXJmIH4K\007"),
    ("osc0", r"\033]0;PWNED-TITLE\007"),
    ("osc2", r"\033]2;PWNED-TITLE\033\\"),
    ("dcs", r"\033P+q544e\033\\"),
    ("apc", r"\033_PWN-APC\033\\"),
    ("pm", r"\033^PWN-PM\033\\"),
    ("sos", r"\033XPWN-SOS\033\\"),
    ("csi", r"\033[5A\033[2J\033[6n\033[8m"),
    ("c1", r"\302\23331m\302\2350;PWNED-C1\302\234\302\220+q\302\234"),
    ("bidi", r"\342\200\256\342\201\246"),
    ("c0", r"\007\010\010\015"),
]
# The same, as the terminal would receive them.
FORGED = (
    "\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;PWNED-TITLE\x07\x1b]2;PWNED-TITLE\x1b\\"
    "\x1bP+q544e\x1b\\\x1b_PWN-APC\x1b\\\x1b[5A\x1b[6n\x9b31m\x9d0;PWNED-C1\x9c\u202e\u2066\x07"
)
# Bytes that must never reach a reader's terminal from data (UTF-8 of the C1 and bidi points).
NEVER = [
    b"\x1b]52;",
    b"\x1b]0;PWNED",
    b"\x1b]2;PWNED",
    b"\x1bP+q",
    b"\x1b_PWN",
    b"\x1b^PWN",
    b"\x1bXPWN",
    b"\x1b[6n",
    b"\x1b[5A",
    b"\xc2\x9b",
    b"\xc2\x9d",
    b"\xc2\x9c",
    b"\xc2\x90",
    b"\xe2\x80\xae",
    b"\xe2\x81\xa6",
    b"\x07\x08\x08",  # BEL, backspaces (Textual's own OSC 22 ends with a BEL: not that one)
]


def _hostile_image(test_image: str) -> str:
    """A catalog entry whose container prints every sequence once, then idles."""
    script = "".join(f"printf 'BEGIN-{label}{text}END-{label}\\n'; " for label, text in PRINTED)
    cmd = ["/bin/sh", "-c", f"trap 'exit 0' TERM; {script}while :; do sleep 1; done"]
    return (
        f'[images.hostile]\nref = "{test_image}"\nhourly_rate = "0.01"\n'
        f'cmd = {json.dumps(cmd)}\nmemory = "64m"\n\n'
    )


@pytest.fixture
def hostile_config(make_shared_config: Callable[..., Path], test_image: str) -> Path:  # noqa: F811
    """The shared test config with the ``hostile`` image and cl-admin as an admin."""
    return make_shared_config(
        'admins = ["cl-admin"]',
        {"[images.offline]": _hostile_image(test_image) + "[images.offline]"},
    )


def _leaks(data: bytes) -> list[bytes]:
    return [seq for seq in NEVER if seq in data]


# --- running as another OS user, as an installed command -------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user may write to (as /tmp or a team folder), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cl-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def launcher() -> Iterator[Path]:
    """What ``pip install`` makes of the ``containerlease`` entry point: a script, readable by
    every user, that imports the package by name (``sys.path[0]`` is the script's folder)."""
    folder = Path(tempfile.mkdtemp(prefix="cl-bin-", dir="/tmp"))
    folder.chmod(0o755)
    script = folder / "containerlease"
    script.write_text(
        "import sys\nfrom containerlease_tui.cli import main\n\nif __name__ == '__main__':\n"
        "    sys.exit(main())\n"
    )
    script.chmod(0o644)
    yield script
    shutil.rmtree(folder, ignore_errors=True)


def _user_env(config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    python = _user_python()
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": python.path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "CONTAINERLEASE_CONFIG": str(config),
        "HOME": "/",
        "LANG": "C.UTF-8",
        **(extra or {}),
    }


def _user_argv(user: str, config: Path, launcher: Path, *args: str, **env: str) -> list[str]:
    clean = _user_env(config, env)
    return [
        "runuser",
        "-u",
        user,
        "--",
        "env",
        "-i",
        *(f"{key}={value}" for key, value in clean.items()),
        _user_python().executable,
        str(launcher),
        *args,
    ]


def _command_as(user: str, config: Path, launcher: Path, cwd: Path, *args: str) -> Run:
    """``containerlease ARGS`` as ``user``, started in ``cwd``."""
    done = subprocess.run(
        _user_argv(user, config, launcher, *args), cwd=cwd, capture_output=True, timeout=120
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def _on_a_terminal(argv: list[str], cwd: Path | None = None) -> tuple[int, bytes, str]:
    """Run ``argv`` with stdout on a pseudo-terminal; return (status, terminal bytes, stderr)."""
    main, tty = os.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdout=tty, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd
        )
        os.close(tty)
        tty = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=60)
    finally:
        if tty >= 0:
            os.close(tty)
        os.close(main)
    return proc.returncode, b"".join(chunks), err.decode(errors="replace")


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


# --- 1. code from the current directory ------------------------------------------------------

PLANTED = """\
import os, sys
with open({marker!r}, "a") as out:
    out.write(f"ran as uid {{os.getuid()}}: {{sys.argv}}\\n")
"""


def _plant_package(shared: Path, marker: Path) -> None:
    """cl-bob leaves ``containerlease_tui/__init__.py`` in the shared folder."""
    body = PLANTED.format(marker=str(marker))
    planted = subprocess.run(
        [
            "runuser",
            "-u",
            "cl-bob",
            "--",
            "sh",
            "-c",
            'mkdir -p "$1/containerlease_tui" && cat > "$1/containerlease_tui/__init__.py"',
            "plant",
            str(shared),
        ],
        input=body.encode(),
        capture_output=True,
        timeout=30,
    )
    assert planted.returncode == 0, planted.stderr
    marker.parent.chmod(0o1777)


def _status_of(user: str, config: Path, lid: str) -> str:
    seen = _run_as(user, config, "ls", "--json")
    assert seen.code == 0, seen.err
    rows = {row["id"]: row for row in json.loads(seen.out)}
    return str(rows[lid]["status"])


def test_provision_from_a_shared_folder_runs_none_of_its_code(
    hostile_config: Path, shared_dir: Path, launcher: Path
) -> None:
    marker = shared_dir / "markers" / "pwned"
    marker.parent.mkdir()
    _plant_package(shared_dir, marker)

    made = _command_as(
        "cl-alice", hostile_config, launcher, shared_dir, "provision", "busybox", "--json"
    )
    assert made.code == 0, made.err
    lease = json.loads(made.out)
    assert lease["status"] == "pending"  # the detached helper does the rest
    lid = str(lease["id"])

    def finished() -> bool:
        return marker.exists() or _status_of("cl-alice", hostile_config, lid) != "pending"

    _wait(finished, 60, "the helper to finish the lease (or the planted code to run)")
    assert not marker.exists(), f"cl-bob's code ran: {marker.read_text()}"
    _wait(lambda: _status_of("cl-alice", hostile_config, lid) == "running", 60, "running")
    assert not marker.exists()


def test_behind_sudo_a_shared_folder_runs_none_of_its_code(
    make_shared_config: Callable[..., Path],  # noqa: F811
    shared_dir: Path,
    launcher: Path,
) -> None:
    """The ``sudo`` deployment: the service user (root here) runs from the caller's folder."""
    config = make_shared_config('service_user = "root"')
    marker = shared_dir / "markers" / "pwned"
    marker.parent.mkdir()
    _plant_package(shared_dir, marker)
    alice = pwd.getpwnam("cl-alice").pw_uid
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("CONTAINERLEASE_", "SUDO_", "PYTHON"))
    }
    env.update(CONTAINERLEASE_CONFIG=str(config), SUDO_UID=str(alice))
    done = subprocess.run(
        [sys.executable, str(launcher), "provision", "busybox", "--json"],
        cwd=shared_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lease = json.loads(done.stdout)
    assert lease["owner"] == "cl-alice"
    lid = str(lease["id"])

    def finished() -> bool:
        return marker.exists() or _status_of("cl-alice", config, lid) != "pending"

    _wait(finished, 60, "the helper to finish the lease (or the planted code to run)")
    assert not marker.exists(), f"cl-bob's code ran as root: {marker.read_text()}"
    _wait(lambda: _status_of("cl-alice", config, lid) == "running", 60, "running")


# --- 2. terminal control from data -----------------------------------------------------------


def test_container_output_reaches_a_terminal_without_its_controls(
    hostile_config: Path, launcher: Path
) -> None:
    made = _run_as("cl-alice", hostile_config, "provision", "hostile", "--wait", "--json")
    assert made.code == 0, made.err
    lid = str(json.loads(made.out)["id"])
    labels = [label for label, _ in PRINTED]

    def printed() -> bool:
        out = _run_as("cl-alice", hostile_config, "logs", lid).out
        return f"END-{labels[-1]}" in out

    _wait(printed, 30, "the container's output")

    # cl-admin reads cl-alice's container on a terminal: nothing the container sent acts on it.
    code, screen, err = _on_a_terminal(
        _user_argv("cl-admin", hostile_config, launcher, "logs", lid), cwd=Path("/")
    )
    assert code == 0, err
    assert _leaks(screen) == [], screen
    assert b"\x1b" not in screen and b"\x07" not in screen and b"\x08" not in screen
    text = screen.decode()
    for label in labels:
        assert f"BEGIN-{label}" in text and f"END-{label}" in text, (label, text)

    # --raw on a terminal, and a pipe, get the bytes as they were: the container did send them.
    code, raw, err = _on_a_terminal(
        _user_argv("cl-admin", hostile_config, launcher, "logs", lid, "--raw"), cwd=Path("/")
    )
    assert code == 0, err
    assert set(_leaks(raw)) >= {b"\x1b]52;", b"\x1b]0;PWNED", b"\xc2\x9b", b"\xe2\x80\xae"}
    piped = _run_as("cl-admin", hostile_config, "logs", lid)
    assert "\x1b]52;" in piped.out and "\u202e" in piped.out


async def _forge(
    settings: Settings, redis_client: aioredis.Redis, owner: str, /, **fields: object
) -> str:
    """A record written straight into Redis by someone who can write Redis: a lease inserted
    through the store, then its data replaced by ``fields`` (no validation on the way)."""
    store = LeaseStore.from_settings(settings)
    try:
        now = utcnow()
        lease = Lease(
            name=f"f-{secrets.token_hex(3)}",
            owner=owner,
            image="busybox",
            image_ref=settings.images["busybox"].ref,
            created_at=now,
            expires_at=now + timedelta(hours=1),
            hourly_rate=settings.images["busybox"].hourly_rate,
        )
        await store.insert(lease, max_per_user=1000, max_total=1000)
        data = lease.model_dump(mode="json")
        data.update(fields)
        await redis_client.hset(store.keys.lease(lease.id), "data", json.dumps(data))
        return lease.id
    finally:
        await store.close()


@pytest.mark.parametrize("field", ["name", "owner", "image", "image_ref", "docker_id"])
async def test_a_forged_record_is_refused_not_shown(
    settings: Settings,
    hostile_config: Path,
    redis_client: aioredis.Redis,
    launcher: Path,
    field: str,
) -> None:
    """A record with controls in a field it may not hold them in, read on a terminal by its
    "owner" and by everybody else: refused in one line (or, once listings skip unreadable
    records, left out), its bytes never written."""
    forged = await _forge(
        settings, redis_client, "cl-bob", **{field: f"x{FORGED}", "status": "running"}
    )
    for user, args in (
        ("cl-alice", ("ls", "--all")),
        ("cl-bob", ("ls",)),
        ("cl-bob", ("status", forged)),
    ):
        code, screen, err = await _async_terminal(_user_argv(user, hostile_config, launcher, *args))
        seen = screen + err.encode()
        assert _leaks(seen) == [] and b"\x07" not in seen, (args, seen)
        assert b"\x1b" not in seen, (args, seen)
        if code:  # refused: one line, never a traceback
            assert len(err.strip().splitlines()) == 1, (args, err)
            assert "Traceback" not in err


async def test_a_forged_error_reaches_no_terminal_as_control(
    settings: Settings, hostile_config: Path, redis_client: aioredis.Redis, launcher: Path
) -> None:
    """Free text a record may hold (a failed lease's error), with every kind of control."""
    failed = await _forge(
        settings,
        redis_client,
        "cl-bob",
        status=LeaseStatus.FAILED.value,
        error=f"BEGIN-error{FORGED}END-error",
        ended_at=utcnow().isoformat(),
    )
    code, screen, err = await _async_terminal(
        _user_argv("cl-bob", hostile_config, launcher, "status", failed)
    )
    assert code == 0, err
    assert _leaks(screen) == [] and b"\x1b" not in screen and b"\x07" not in screen, screen
    assert "BEGIN-error" in screen.decode() and "END-error" in screen.decode()
    listed = _run_as("cl-alice", hostile_config, "ls", "--all")
    assert listed.code == 0, listed.err
    assert failed in listed.out


async def _async_terminal(argv: list[str]) -> tuple[int, bytes, str]:
    import asyncio

    return await asyncio.to_thread(_on_a_terminal, argv, Path("/"))


# --- the app, in a real terminal (tmux), as cl-alice -----------------------------------------


def _default_signals() -> None:
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


class Terminal:
    """A private tmux server running the app as another OS user; keeps every byte it wrote."""

    def __init__(self, log: Path) -> None:
        self.socket = f"cl-hostile-{secrets.token_hex(4)}"
        self.log = log
        self.status = log.with_suffix(".status")

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=20,
            env={"PATH": os.environ["PATH"], "TERM": "xterm-256color", "LANG": "C.UTF-8"},
            preexec_fn=_default_signals,
        )

    def start(self, argv: list[str], cwd: Path) -> None:
        command = (
            f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}; "
            f"echo $? > {shlex.quote(str(self.status))}"
        )
        self.tmux("new-session", "-d", "-s", "app", "-x", "140", "-y", "40", command)
        self.tmux("pipe-pane", "-o", "-t", "app", f"cat >> {shlex.quote(str(self.log))}")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "app").stdout

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "app", "#{pane_title}").stdout.strip()

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", *keys)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "app", check=False).returncode == 0

    def quit(self) -> None:
        self.send("q")
        _wait(lambda: not self.alive(), 30, "the app to quit")
        _wait(self.status.exists, 5, "the app's exit status")
        assert self.status.read_text().strip() == "0"

    def written(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""

    def kill(self) -> None:
        self.tmux("kill-server", check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    log = Path(tempfile.mkdtemp(prefix="cl-tty-", dir="/tmp")) / "terminal.log"
    term = Terminal(log)
    yield term
    term.kill()
    shutil.rmtree(log.parent, ignore_errors=True)


def _app_argv(config: Path, launcher: Path) -> list[str]:
    argv = _user_argv("cl-alice", config, launcher, "--no-reaper")
    at = argv.index("-i") + 1
    argv[at:at] = ["TERM=xterm-256color", "COLORTERM=truecolor"]
    return argv


async def test_the_app_writes_no_control_from_data_to_the_terminal(
    settings: Settings,
    hostile_config: Path,
    redis_client: aioredis.Redis,
    launcher: Path,
    terminal: Terminal,
    shared_dir: Path,
) -> None:
    import asyncio

    made = _run_as("cl-alice", hostile_config, "provision", "hostile", "--wait", "--json")
    assert made.code == 0, made.err
    lid = str(json.loads(made.out)["id"])
    failed = await _forge(
        settings,
        redis_client,
        "cl-alice",
        status=LeaseStatus.FAILED.value,
        error=f"BEGIN-error{FORGED}END-error",
        ended_at=utcnow().isoformat(),
        failure="provision",
    )
    terminal.start(_app_argv(hostile_config, launcher), shared_dir)
    await asyncio.to_thread(
        _wait, lambda: lid in terminal.screen() and failed in terminal.screen(), 40, "the leases"
    )
    terminal.send("l")  # the running lease is the first row: follow its output
    await asyncio.to_thread(
        _wait, lambda: "END-c0" in terminal.screen(), 30, "the container's output in the pane"
    )
    # A forged event: the app toasts the failure with the event's detail.
    await redis_client.xadd(
        f"{settings.redis.key_prefix}:events",
        {
            "type": "failed",
            "lease": failed,
            "owner": "cl-alice",
            "at": utcnow().isoformat(),
            "detail": f"BEGIN-detail {FORGED} END-detail",
        },
    )
    await asyncio.to_thread(
        _wait, lambda: "END-detail" in terminal.screen(), 30, "the forged event's toast"
    )
    shown = terminal.screen()
    assert "BEGIN-osc52" in shown and "END-osc52" in shown
    assert "PWNED" not in terminal.title()
    await asyncio.to_thread(terminal.quit)
    written = terminal.written()
    assert _leaks(written) == [], _leaks(written)


# --- 3. log save clobbers ---------------------------------------------------------------------


def test_log_save_never_follows_a_planted_symlink(
    hostile_config: Path, launcher: Path, terminal: Terminal
) -> None:
    # A team folder (group- or world-writable, no sticky bit): links in it are followed.
    team = Path(tempfile.mkdtemp(prefix="cl-team-", dir="/tmp"))
    home = Path(tempfile.mkdtemp(prefix="cl-alice-home-", dir="/tmp"))
    try:
        team.chmod(0o777)
        alice = pwd.getpwnam("cl-alice")
        os.chown(home, alice.pw_uid, alice.pw_gid)
        home.chmod(0o755)
        victim = home / ".bashrc"
        victim.write_text("alias ls='ls --color'\n")
        os.chown(victim, alice.pw_uid, alice.pw_gid)
        victim.chmod(0o644)

        made = _run_as("cl-alice", hostile_config, "provision", "busybox", "--wait", "--json")
        assert made.code == 0, made.err
        lid = str(json.loads(made.out)["id"])
        planted = subprocess.run(
            [
                *("runuser", "-u", "cl-bob", "--", "ln", "-s"),
                *(str(victim), str(team / f"containerlease-{lid}.log")),
            ],
            capture_output=True,
            timeout=30,
        )
        assert planted.returncode == 0, planted.stderr

        terminal.start(_app_argv(hostile_config, launcher), team)
        _wait(lambda: lid in terminal.screen(), 40, "the lease in the table")
        terminal.send("l")
        _wait(lambda: "tick" in terminal.screen(), 30, "the container's output")
        terminal.send("C-s")
        saved = team / f"containerlease-{lid}-1.log"

        def answered() -> bool:
            screen = terminal.screen()
            return "Log saved" in screen or "Could not save" in screen or victim.stat().st_size == 0

        _wait(answered, 20, "the save's toast")
        shown = terminal.screen()
        terminal.quit()

        assert victim.read_text() == "alias ls='ls --color'\n"  # untouched
        assert saved.exists(), shown
        assert saved.stat().st_uid == alice.pw_uid
        assert saved.stat().st_mode & 0o777 == 0o600
        assert "tick" in saved.read_text()
        assert f"containerlease-{lid}-1.log" in re.sub(r"\s+", "", shown)
    finally:
        shutil.rmtree(team, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


# --- 6. the small ones ------------------------------------------------------------------------


def test_status_of_anothers_lease_needs_its_owner_or_an_admin(hostile_config: Path) -> None:
    made = _run_as("cl-alice", hostile_config, "provision", "busybox", "--wait", "--json")
    assert made.code == 0, made.err
    lid = str(json.loads(made.out)["id"])
    for args in (["status", lid], ["status", lid, "--json"]):
        refused = _run_as("cl-bob", hostile_config, *args)
        assert refused.code == 1, refused
        assert "belongs to cl-alice" in refused.err and "cpu" not in refused.out.lower()
        assert len(refused.err.strip().splitlines()) == 1
    for user in ("cl-alice", "cl-admin"):
        seen = _run_as(user, hostile_config, "status", lid, "--json")
        assert seen.code == 0, seen.err
        assert json.loads(seen.out)["state"] == "running"


async def test_an_unexpected_error_is_one_line(
    settings: Settings, hostile_config: Path, redis_client: aioredis.Redis
) -> None:
    # A record pydantic refuses (whatever the version: no such status, no such time), with a
    # message of several lines.
    broken = await _forge(settings, redis_client, "cl-bob", status="exploded", expires_at="never")
    done = _run_as("cl-bob", hostile_config, "status", broken)
    assert done.code != 0
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith("containerlease: ") and "Traceback" not in done.err


def test_a_duration_out_of_range_is_named_exactly(
    make_shared_config: Callable[..., Path],  # noqa: F811
) -> None:
    config = make_shared_config("admins = []", {'max_duration = "8h"': 'max_duration = "2h"'})
    refused = _run_as("cl-alice", config, "provision", "busybox", "-d", "7200001ms")
    assert refused.code == 2, refused
    assert "duration 2h1ms is out of range: allowed 1s to 2h" in refused.err, refused.err
    allowed = _run_as("cl-alice", config, "provision", "busybox", "-d", "7200000ms", "--json")
    assert allowed.code == 0, allowed.err


def _documented_acl() -> str:
    """The ``ACL SETUSER`` line docs/security.md suggests."""
    text = (REPO / "docs" / "security.md").read_text()
    found = re.findall(r"`(ACL SETUSER containerlease [^`]+)`", text)
    assert len(found) == 1, found
    return found[0]


async def test_the_documented_redis_acl_is_enough(
    settings: Settings, redis_url: str, key_prefix: str
) -> None:
    """Everything ContainerLease does works through the ACL user the docs suggest, and that user
    reaches nothing outside its key prefix, and no pub/sub channel at all."""
    from containerlease_tui.leases import LeaseService, ProvisionRequest
    from containerlease_tui.reaper import Reaper

    user, password = f"cl{secrets.token_hex(3)}", secrets.token_hex(12)
    rule = (
        _documented_acl()
        .replace("containerlease", user, 1)
        .replace("LONG-RANDOM-PASSWORD", password)
        .replace("cl:*", f"{key_prefix}:*")
    )
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command(*rule.split())
    try:
        limited = settings.model_copy(deep=True)
        limited.redis.url = f"redis://{user}:{password}@{redis_url.removeprefix('redis://')}"
        service = LeaseService.open(limited, user="alice")
        try:
            lease = await service.provision(ProvisionRequest("busybox", "10m", name="acl"))
            await service.extend(lease.id, "5m")
            batch = await service.events("0", block_ms=100)
            assert {e.type.value for e in batch.events} >= {"created", "running", "extended"}
            await Reaper(limited, service.store, service.engine).run_once()
            assert (await service.release(lease.id)).status is LeaseStatus.RELEASED
        finally:
            await service.close()
        outsider = aioredis.Redis.from_url(limited.redis.url)
        try:
            with pytest.raises(Exception, match=r"(?i)no permissions|NOPERM"):
                await outsider.set("elsewhere", "x")
            # Nothing uses pub/sub, so the suggested ACL takes every channel away.
            with pytest.raises(Exception, match=r"(?i)no permissions|NOPERM"):
                await outsider.publish(f"{key_prefix}:events", "x")
        finally:
            await outsider.aclose()
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()
