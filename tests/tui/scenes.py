"""The screens the snapshot tests compare and ``scripts/screenshots`` saves: one definition each.

A scene is the app over the fixed data of :mod:`fakes`, a terminal size, and the steps that bring
the app to the state shown. Steps wait on conditions (never fixed sleeps) and stop the cursor
blinking, so every rendering is identical.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from .fakes import demo_app
from .helpers import rendered, settle

Steps = Callable[[Pilot[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Scene:
    """An app state worth looking at."""

    steps: Steps
    size: tuple[int, int] = (120, 32)
    app_kwargs: dict[str, Any] = field(default_factory=dict)

    def app(self) -> Any:
        return demo_app(**self.app_kwargs)


def _steady(pilot: Pilot[Any]) -> None:
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False


def _measured(table: Any) -> bool:
    """The table sized its columns to their cells (DataTable does that when it is idle)."""
    return all(
        column.content_width >= max((len(str(cell)) for cell in table.get_column(key)), default=0)
        for key, column in table.columns.items()
    )


def _loaded(app: Any) -> bool:
    main = app.main
    return (
        main.leases.table.row_count > 0
        and _measured(main.leases.table)
        and main.status.redis_ok is True
        and main.status.docker_ok is True
        and main.status.reapers is not None
        and main.status.reaper_line is not None
        and all(present is not None for present in main.form._present.values())
        and main.form.outlook is not None
    )


async def main_screen(pilot: Pilot[Any]) -> None:
    """Leases of three users in every state, countdowns, costs, the status bar."""
    await settle(pilot, lambda: _loaded(pilot.app), what="the demo leases")
    _steady(pilot)
    await rendered(pilot, "api-dev")


async def provision_error(pilot: Pilot[Any]) -> None:
    """A duration out of range: the error names the allowed range; Provision is disabled."""
    await main_screen(pilot)
    await pilot.press("n", "tab", *"12h")
    await settle(pilot, lambda: "12h" in pilot.app.main.form.error)
    _steady(pilot)
    await rendered(pilot, "12h")


async def confirm_delete(pilot: Pilot[Any]) -> None:
    """``d`` on a lease asks first, naming the lease and its container."""
    await main_screen(pilot)
    await pilot.press("down", "d")
    await settle(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmScreen")
    await rendered(pilot)


async def help_screen(pilot: Pilot[Any]) -> None:
    """``?`` lists every key."""
    await main_screen(pilot)
    await pilot.press("question_mark")
    await settle(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")
    await rendered(pilot)


async def logs(pilot: Pilot[Any]) -> None:
    """``l`` follows a lease's output; ``f`` filters it and highlights the matches."""
    await main_screen(pilot)
    await pilot.press("down", "l")
    await settle(pilot, lambda: len(pilot.app.main.logs.lines) == 12)
    await pilot.press("f", *"orders")
    await settle(pilot, lambda: pilot.app.main.logs.filter_text == "orders")
    _steady(pilot)
    await rendered(pilot)


async def narrow_form(pilot: Pilot[Any]) -> None:
    """On a narrow terminal ``n`` unfolds the form over the table's right-hand columns."""
    await main_screen(pilot)
    await pilot.press("n")
    await settle(pilot, lambda: pilot.app.main.form.query_one("#image").has_focus)
    await pilot.press("tab")
    _steady(pilot)
    await rendered(pilot)


async def redis_down(pilot: Pilot[Any]) -> None:
    """Redis down: a banner says so and what it means; the app stays up."""
    main = pilot.app.main
    await settle(
        pilot,
        lambda: (
            main.query_one("#banner").has_class("-visible")
            and main.status.redis_ok is False
            and main.status.docker_ok is True
        ),
    )
    _steady(pilot)
    await rendered(pilot)


async def too_small(pilot: Pilot[Any]) -> None:
    """Below 80x24 a message replaces the panes."""
    await settle(pilot, lambda: pilot.app.main.has_class("-too-small"))
    await rendered(pilot)


def _demo_events(app: Any) -> None:
    """A morning's activity on the demo leases (events at the fixed "now")."""
    from containerlease_tui.models import EventType

    service = app.service
    service.emit(EventType.CREATED, "k7m2x9qa", "ubuntu for 2h")
    service.emit(EventType.RUNNING, "k7m2x9qa", "3f9c2a1b7d4e")
    service.emit(EventType.CREATED, "w6t5y2pe", "python for 4h")
    service.emit(EventType.EXTENDED, "k7m2x9qa", "by 30m")
    service.emit(EventType.EXPIRED, "e5f6g7hj", "deadline passed")
    service.emit(EventType.RESTARTED, "b4n8c3rd")


async def activity(pilot: Pilot[Any]) -> None:
    """``v``: who did what, live; the command line of each user action, copyable."""
    from containerlease_tui.tui.screens import ActivityScreen

    await settle(pilot, lambda: _loaded(pilot.app), what="the demo leases")
    _demo_events(pilot.app)
    await pilot.press("v")
    await settle(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, ActivityScreen)
            and pilot.app.screen.table.row_count == 6
            and _measured(pilot.app.screen.table)
        ),
        what="the events",
    )
    await pilot.pause()


async def team(pilot: Pilot[Any]) -> None:
    """``T``: spend per user today and this week, the budget, the box's capacity."""
    from containerlease_tui.tui.screens import TeamScreen

    await settle(pilot, lambda: _loaded(pilot.app), what="the demo leases")
    await pilot.press("T")
    await settle(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, TeamScreen)
            and pilot.app.screen.team is not None
            and _measured(pilot.app.screen.query_one("#team-table"))
        ),
        what="the figures",
    )
    await pilot.pause()


async def reapers(pilot: Pilot[Any]) -> None:
    """``R``: every live reaper, the claims held and the next deadlines."""
    from containerlease_tui.tui.screens import ReapersScreen

    await settle(pilot, lambda: _loaded(pilot.app), what="the demo leases")
    await pilot.press("R")
    await settle(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, ReapersScreen)
            and pilot.app.screen.view is not None
            and _measured(pilot.app.screen.query_one("#reapers-table"))
        ),
        what="the reapers",
    )
    await pilot.pause()


SCENES: dict[str, Scene] = {
    "main": Scene(main_screen),
    "main-80x24": Scene(main_screen, size=(80, 24)),
    "form-80x24": Scene(narrow_form, size=(80, 24)),
    "logs-80x24": Scene(logs, size=(80, 24)),
    "no-reaper": Scene(main_screen, app_kwargs={"reaper_alive": False}),
    "provision-error": Scene(provision_error),
    "confirm-delete": Scene(confirm_delete),
    "help": Scene(help_screen, size=(120, 42)),
    "logs": Scene(logs),
    "redis-down": Scene(redis_down, app_kwargs={"redis_ok": False}),
    "too-small": Scene(too_small, size=(70, 20)),
    "activity": Scene(activity),
    "team": Scene(team),
    "reapers": Scene(reapers),
}
