"""Waiting on conditions in Pilot tests: poll with ``pilot.pause()``, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def settle(
    pilot: Pilot[Any], condition: Callable[[], object], within: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``condition()`` is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if condition():
                return
        except Exception:  # e.g. a widget not mounted yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or condition}")
        await pilot.pause(0.05)
