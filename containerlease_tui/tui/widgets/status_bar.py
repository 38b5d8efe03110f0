"""The one-line status bar: Redis, Docker, the reaper, the user and a clock."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from containerlease_tui.models import utcnow
from containerlease_tui.sanitize import one_line

if TYPE_CHECKING:
    from containerlease_tui.leases import ReaperStatus
from containerlease_tui.tui.formatting import clock_text

UNKNOWN = "reaper: unknown while Redis is down"
STARTING = "reaper starting in this app…"
NO_REAPER_OPEN = (
    "no reaper running (--no-reaper) — expired leases stay until one runs",
    "no reaper running — expired leases stay",
    "no reaper running",
)
"""The app is open without a reaper: nothing removes leases now (not only once it closes)."""


def _state(ok: bool | None) -> str:
    if ok is None:
        return "[$warning]◌[/]"
    return "[$success]●[/]" if ok else "[$error]✖[/]"


class ReaperState(Widget):
    """The reaper part of the bar: the longest reading of the line that fits; all of it in the
    tooltip."""

    line: reactive[str] = reactive(UNKNOWN)
    forms: reactive[tuple[str, ...]] = reactive((UNKNOWN,))
    """The line and shorter readings of it, longest first (from ``ReaperStatus.forms``)."""
    ok: reactive[bool | None] = reactive(None)

    def render(self) -> Content:
        room = max(0, self.size.width - 2)
        forms = self.forms
        text = next((form for form in forms if len(form) <= room), forms[-1])
        style = {True: "", False: "$warning", None: "$text-muted"}[self.ok]
        return Content.from_markup(
            f"{_state(self.ok)} [{style}]$what[/]" if style else f"{_state(self.ok)} $what",
            what=text,
        )

    def watch_line(self, line: str) -> None:
        self.tooltip = Content(line)  # a str tooltip would be parsed as markup


class StatusBar(Widget):
    """Connection states, whether a reaper is alive, who is using the app and the time (UTC)."""

    redis_ok: reactive[bool | None] = reactive(None)
    docker_ok: reactive[bool | None] = reactive(None)
    in_app_reaper: reactive[bool | None] = reactive(None)
    """True: running in this app; False: failed; None: not started here (``--no-reaper``)."""
    reaper: reactive[ReaperStatus | None] = reactive(None)
    """The live reapers, from the service (None: unknown, Redis is down)."""
    reaper_disabled: reactive[bool] = reactive(False)
    """The app runs without its reaper (``--no-reaper``)."""
    user: reactive[str] = reactive("")
    now: reactive[datetime] = reactive(utcnow)

    def compose(self) -> ComposeResult:
        yield Static(id="status-services")
        yield ReaperState(id="status-reaper")
        yield Static(id="status-user")

    def on_mount(self) -> None:
        self._services()
        self._reaper()
        self._user()

    @property
    def reaper_text(self) -> str:
        """The whole reaper line as shown (before any shortening)."""
        return self.query_one(ReaperState).line

    def _services(self) -> None:
        self.query_one("#status-services", Static).update(
            Content.from_markup(f"{_state(self.redis_ok)} Redis  {_state(self.docker_ok)} Docker  ")
        )

    @property
    def reapers(self) -> int | None:
        """Reapers with a fresh heartbeat (None: unknown)."""
        return None if self.reaper is None else self.reaper.count

    @property
    def reaper_line(self) -> str | None:
        """The service's line on the reapers; None: unknown, Redis is down."""
        return None if self.reaper is None else self.reaper.describe(self.now)

    def _reaper(self) -> None:
        state = self.query_one(ReaperState)
        reaper = self.reaper
        if reaper is None:
            forms, state.ok = [UNKNOWN], None
        elif not reaper.alive and self.in_app_reaper:
            forms, state.ok = [STARTING], None  # its first heartbeat is on its way
        elif not reaper.alive and self.reaper_disabled:
            forms, state.ok = list(NO_REAPER_OPEN), False
        else:
            # The lines name the reapers' hosts, as their heartbeats in Redis say.
            forms, state.ok = [one_line(f) for f in reaper.forms(self.now)], reaper.alive
        state.line, state.forms = forms[0], tuple(forms)

    def _user(self, *, layout: bool = True) -> None:
        self.query_one("#status-user", Static).update(
            Content.from_markup(
                "[dim]│[/] $user [dim]│[/] $clock",
                user=one_line(self.user or "…"),
                clock=clock_text(self.now),
            ),
            layout=layout,
        )

    def watch_redis_ok(self) -> None:
        if self.is_mounted:
            self._services()

    def watch_docker_ok(self) -> None:
        if self.is_mounted:
            self._services()

    def watch_reaper(self) -> None:
        if self.is_mounted:
            self._reaper()

    def watch_reaper_disabled(self) -> None:
        if self.is_mounted:
            self._reaper()

    def watch_in_app_reaper(self) -> None:
        if self.is_mounted:
            self._reaper()

    def watch_user(self) -> None:
        if self.is_mounted:
            self._user()

    def watch_now(self) -> None:
        # The clock keeps its width, so no layout pass: with one, every second repainted the
        # whole screen (the lease table included), not just the clock.
        if self.is_mounted:
            self._user(layout=False)
