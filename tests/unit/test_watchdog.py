"""The exit watchdog ends a process whose main thread is stuck (as Textual's is, writing to a
terminal that hung up)."""

from __future__ import annotations

import subprocess
import sys

STUCK = """
import threading
from containerlease_tui.tui.watchdog import exit_after
exit_after(0.2)
threading.Event().wait()  # the main thread never comes back, as in a write nobody reads
"""


def test_a_stuck_process_still_exits() -> None:
    done = subprocess.run([sys.executable, "-c", STUCK], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_process_that_ends_first_does_not_wait_for_it() -> None:
    quick = "from containerlease_tui.tui.watchdog import exit_after; exit_after(600, code=3)"
    done = subprocess.run([sys.executable, "-c", quick], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr
