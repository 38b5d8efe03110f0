"""The app in a real terminal (tmux): it opens, shows its panes, quits cleanly on ``q``, and
hands the terminal to a shell in a container and takes it back (``s``)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def _default_signals() -> None:
    """The tmux server inherits ignored signals: an ignored SIGCHLD (which something in this
    test process may have set) would let it lose the app's exit status."""
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


class Tmux:
    """A private tmux server (its own socket, an empty config) holding one session."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"cl-test-{secrets.token_hex(4)}"
        self.session = "app"
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=check,
            timeout=20,
            preexec_fn=_default_signals,
        )

    def start(self, width: int, height: int, command: str, log: Path) -> None:
        self.run(
            "new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), command
        )
        # Everything the app writes to the terminal, kept after the session is gone.
        self.run("pipe-pane", "-o", "-t", self.session, f"cat >> {shlex.quote(str(log))}")

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-t", self.session).stdout

    def send(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session, check=False).returncode == 0

    def kill(self) -> None:
        self.run("kill-server", check=False)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def tmux(tmp_path: Path, config_file: Path) -> Iterator[Tmux]:
    env = {
        key: value
        for key, value in os.environ.items()
        # COLUMNS/LINES (set by pytest-xdist's workers) would outrank the pane's real size.
        if not key.startswith(("CONTAINERLEASE_", "TMUX", "PYTEST", "TEXTUAL"))
        and key not in ("COLUMNS", "LINES")
    }
    env.update(
        CONTAINERLEASE_CONFIG=str(config_file),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        TERM="xterm-256color",
        LANG=os.environ.get("LANG") or "C.UTF-8",
    )
    server = Tmux(env)
    yield server
    server.kill()


def _start_app(tmux: Tmux, width: int, height: int, repo_root: Path, tmp_path: Path) -> Path:
    """``containerlease --no-reaper`` in the tmux session; returns the exit-status file."""
    log = tmp_path / "terminal.log"
    status = tmp_path / "exit-status"
    app = f"{shlex.quote(sys.executable)} -m containerlease_tui --no-reaper"
    # The shell records the app's exit status itself (tmux may not learn it when a pane
    # exits under load); then the pane, and with it the session, ends.
    command = f"cd {shlex.quote(str(repo_root))} && {app}; echo $? > {shlex.quote(str(status))}"
    tmux.start(width, height, command, log)
    return status


def _quit(tmux: Tmux, status: Path) -> None:
    tmux.send("q")
    _wait(lambda: not tmux.alive(), 30, "the session to end")
    _wait(status.exists, 5, "the exit status")
    assert status.read_text().strip() == "0"


@pytest.mark.parametrize(("width", "height"), [(80, 24), (200, 60)])
def test_opens_and_quits_cleanly(
    tmux: Tmux,
    width: int,
    height: int,
    repo_root: Path,
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
) -> None:
    log = tmp_path / "terminal.log"
    status = _start_app(tmux, width, height, repo_root, tmp_path)
    # Below 110 columns the provision form is folded away until n; the footer says so.
    parts = ["filter leases", "Logs", "Redis", "q Quit", "n New"]
    if width >= 110:
        parts.append("New lease")

    def panes_shown() -> bool:
        screen = tmux.capture()
        return all(part in screen for part in parts)

    _wait(panes_shown, 30, "the panes to be drawn")
    _wait(lambda: "● Docker" in tmux.capture(), 20, "Docker to be reported up")
    screen = tmux.capture()
    assert "Traceback" not in screen
    assert "too small" not in screen

    # --no-reaper: no heartbeat in Redis, and the status bar warns about it.
    _wait(lambda: "no reaper running" in tmux.capture(), 20, "the no-reaper warning")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.smembers(f"{key_prefix}:reapers") == set()
        assert list(client.scan_iter(match=f"{key_prefix}:reaper:*")) == []
    finally:
        client.close()

    tmux.send("q")
    _wait(lambda: not tmux.alive(), 30, "the session to end")
    _wait(status.exists, 5, "the exit status")
    assert status.read_text().strip() == "0"
    output = log.read_text(errors="replace")
    assert "New lease" in output
    assert "Traceback" not in output
    assert "Error" not in output


def test_shell_hands_over_the_terminal_and_takes_it_back(
    tmux: Tmux, repo_root: Path, tmp_path: Path, config_file: Path
) -> None:
    made = subprocess.run(
        [
            *(sys.executable, "-m", "containerlease_tui", "provision", "busybox"),
            *("--duration", "10m", "--name", "shelly", "--wait", "--json"),
        ],
        env=tmux.env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    lease = json.loads(made.stdout)
    log = tmp_path / "terminal.log"
    status = _start_app(tmux, 120, 30, repo_root, tmp_path)

    def running_row() -> bool:
        screen = tmux.capture()
        return "shelly" in screen and "running" in screen and "● Docker" in screen

    _wait(running_row, 30, "the running lease in the table")
    tmux.send("s")  # the only lease, so the selected one
    _wait(lambda: re.search(r"(?m)^/ # ", tmux.capture()) is not None, 30, "the shell prompt")
    tmux.send("echo SHELL-OK; exit", "Enter")

    def redrawn() -> bool:
        screen = tmux.capture()
        return "filter leases" in screen and "exited (0)" in screen

    _wait(redrawn, 30, "the app to redraw and say the shell exited (0)")
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", log.read_text(errors="replace"))
    assert re.search(r"(?m)^SHELL-OK\r?$", output), "the shell's output did not appear"
    screen = tmux.capture()
    assert "Shell in shelly exited (0)" in screen
    assert "Traceback" not in output
    assert lease["name"] == "shelly" and "shelly" in screen
    _quit(tmux, status)


def test_shell_on_a_container_stopped_from_outside_is_refused_and_q_still_quits(
    tmux: Tmux, repo_root: Path, tmp_path: Path, docker_url: str
) -> None:
    """Issue 15 item 1: `docker stop` behind the app's back, then `s`: a toast, not a frozen
    terminal; `q` still quits."""
    made = subprocess.run(
        [
            *(sys.executable, "-m", "containerlease_tui", "provision", "busybox"),
            *("--duration", "10m", "--name", "stoppy", "--wait", "--json"),
        ],
        env=tmux.env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    lease = json.loads(made.stdout)
    stopped = subprocess.run(
        ["docker", "-H", docker_url, "stop", "-t", "1", lease["docker_id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 0, stopped.stderr
    status = _start_app(tmux, 140, 30, repo_root, tmp_path)
    _wait(lambda: "stoppy" in tmux.capture() and "● Docker" in tmux.capture(), 30, "the lease")
    # The row follows the container's real state (the record still says running).
    _wait(lambda: "exited (" in tmux.capture(), 30, "the exited container in the row")
    tmux.send("s")
    _wait(lambda: "not running" in tmux.capture(), 30, "the refusal toast")
    assert "filter leases" in tmux.capture()  # the app is still drawn, not handed over
    _quit(tmux, status)
