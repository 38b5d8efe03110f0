"""The app in a real terminal (tmux): it opens, shows its panes, and quits cleanly on ``q``."""

from __future__ import annotations

import os
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
        if not key.startswith(("CONTAINERLEASE_", "TMUX", "PYTEST", "TEXTUAL"))
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


@pytest.mark.parametrize(("width", "height"), [(80, 24), (200, 60)])
def test_opens_and_quits_cleanly(
    tmux: Tmux, width: int, height: int, repo_root: Path, tmp_path: Path
) -> None:
    log = tmp_path / "terminal.log"
    status = tmp_path / "exit-status"
    app = f"{shlex.quote(sys.executable)} -m containerlease_tui --no-reaper"
    # The shell records the app's exit status itself (tmux may not learn it when a pane
    # exits under load); then the pane, and with it the session, ends.
    command = f"cd {shlex.quote(str(repo_root))} && {app}; echo $? > {shlex.quote(str(status))}"
    tmux.start(width, height, command, log)

    def panes_shown() -> bool:
        screen = tmux.capture()
        return all(
            part in screen for part in ("New lease", "filter leases", "Logs", "Redis", "Quit")
        )

    _wait(panes_shown, 30, "the panes to be drawn")
    _wait(lambda: "● Docker" in tmux.capture(), 20, "Docker to be reported up")
    screen = tmux.capture()
    assert "Traceback" not in screen
    assert "too small" not in screen

    tmux.run("send-keys", "-t", tmux.session, "q")
    _wait(lambda: not tmux.alive(), 30, "the session to end")
    _wait(status.exists, 5, "the exit status")
    assert status.read_text().strip() == "0"
    output = log.read_text(errors="replace")
    assert "New lease" in output
    assert "Traceback" not in output
    assert "Error" not in output
