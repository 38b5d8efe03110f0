"""Waiting on conditions in Pilot tests (poll with ``pilot.pause()``, never sleep a fixed time),
and reading the screen as the user sees it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

from containerlease_tui.tui import ContainerLeaseApp, create_app

from .fakes import FakeService, fixed_clock

Toasts = list[tuple[str, str]]
"""(text, severity) of every toast the app showed."""


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


def screen_lines(app: App[Any]) -> list[str]:
    """The terminal's rows as plain text: exactly what is visible, cut where the screen ends."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False).splitlines()[:height]


async def rendered(
    pilot: Pilot[Any], *texts: str, within: float = 10.0, frames: int = 3
) -> list[str]:
    """Wait until the screen shows every one of ``texts`` and then stays the same for
    ``frames`` consecutive refreshes (columns sized, layout done): what a snapshot may take.

    A fixed pause was not enough under load: the table had not finished sizing its columns.
    """
    deadline = time.monotonic() + within
    last: list[str] | None = None
    same = 0
    while True:
        await pilot.pause(0.02)
        lines = screen_lines(pilot.app)
        text = "\n".join(lines)
        if all(t in text for t in texts):
            same = same + 1 if lines == last else 0
            if same >= frames:
                return lines
        last = lines
        if time.monotonic() > deadline:
            missing = [t for t in texts if t not in text]
            raise AssertionError(
                f"timed out after {within}s waiting for a steady screen"
                + (f" showing {missing}" if missing else "")
            )


def footer_text(app: App[Any]) -> str:
    """The bottom row of the terminal (the footer), without trailing blanks."""
    return screen_lines(app)[-1].rstrip()


class ManualClock:
    """A clock the test moves: ``clock()`` is "now" for the app, ``advance()`` moves it on."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make(
    clock: Callable[[], datetime] = fixed_clock, **kwargs: Any
) -> tuple[ContainerLeaseApp, FakeService, Toasts]:
    """The app over a fresh :class:`FakeService`, recording its toasts."""
    service = FakeService(**kwargs)
    app = create_app(service.settings, service=service, reaper=False, clock=clock, all_users=True)
    return app, service, record_toasts(app)


def record_toasts(app: ContainerLeaseApp) -> Toasts:
    """Record every ``notify`` of ``app`` (and still show it)."""
    toasts: Toasts = []
    notify = app.notify

    def record(message: str, *args: Any, **kw: Any) -> None:
        toasts.append((str(message), str(kw.get("severity", "information"))))
        notify(message, *args, **kw)

    app.notify = record  # type: ignore[method-assign]
    return toasts


async def loaded(pilot: Pilot[Any]) -> None:
    """Until the demo leases are in the table."""
    app = pilot.app
    assert isinstance(app, ContainerLeaseApp)
    await settle(pilot, lambda: app.main.leases.table.row_count > 0, what="the leases")


async def follow(pilot: Pilot[Any], lease_id: str) -> None:
    """Select a lease and follow its logs (``l``)."""
    app = pilot.app
    assert isinstance(app, ContainerLeaseApp)
    app.main.leases.table.select_lease(lease_id)
    app.main.leases.table.focus()
    await pilot.press("l")
    await settle(pilot, lambda: app.main.logs.lease is not None)


def record_writes(app: ContainerLeaseApp) -> list[str]:
    """Everything the app writes to the terminal from now on."""
    written: list[str] = []
    driver = app._driver
    assert driver is not None
    write = driver.write

    def record(data: str) -> None:
        written.append(data)
        write(data)

    driver.write = record  # type: ignore[method-assign]
    return written
