"""The one-line status bar: Redis, Docker, the reaper, the user and a clock."""

from __future__ import annotations

import re
from datetime import datetime

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from containerlease_tui.models import utcnow
from containerlease_tui.sanitize import one_line
from containerlease_tui.tui.formatting import clock_text

NO_REAPER_PREFIX = "no reaper running"
"""How the core's ``NO_REAPER`` sentence starts (``reaper.reaper_status``)."""
UNKNOWN = "reaper: unknown while Redis is down"
STARTING = "reaper starting in this app…"


def _state(ok: bool | None) -> str:
    if ok is None:
        return "[$warning]◌[/]"
    return "[$success]●[/]" if ok else "[$error]✖[/]"


def shorter_forms(line: str) -> list[str]:
    """``line`` and shorter readings of it, longest first, for a narrow status bar.

    ``reaper alive on devbox (pid 42, last pass 3 s ago) and 1 more`` → ``reaper alive on
    devbox and 1 more`` → ``reaper alive on devbox`` → ``reaper alive``; the no-reaper warning
    keeps its point: ``no reaper running — leases not cleaned once closed`` →
    ``no reaper running``.
    """
    forms = [line]
    if line.startswith(NO_REAPER_PREFIX):
        forms += [f"{NO_REAPER_PREFIX} — leases not cleaned once closed", NO_REAPER_PREFIX]
    elif line.startswith("reaper alive"):
        without_details = re.sub(r" \([^)]*\)", "", line)
        forms += [without_details, without_details.split(" and ")[0], "reaper alive"]
    return list(dict.fromkeys(forms))


class ReaperState(Widget):
    """The reaper part of the bar: the longest reading of the line that fits; all of it in the
    tooltip."""

    line: reactive[str] = reactive(UNKNOWN)
    ok: reactive[bool | None] = reactive(None)

    def render(self) -> Content:
        room = max(0, self.size.width - 2)
        forms = shorter_forms(self.line)
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
    reapers: reactive[int | None] = reactive(None)
    """Reapers with a fresh heartbeat in Redis (None: unknown)."""
    reaper_line: reactive[str | None] = reactive(None)
    """The core's line on the reapers (``reaper_status``); None: unknown, Redis is down."""
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

    def _reaper(self) -> None:
        state = self.query_one(ReaperState)
        line = self.reaper_line
        if line is None:
            state.line, state.ok = UNKNOWN, None
        elif line.startswith(NO_REAPER_PREFIX) and self.in_app_reaper:
            state.line, state.ok = STARTING, None  # its first heartbeat is on its way
        else:
            # The line names the reapers' hosts, as their heartbeats in Redis say.
            state.line, state.ok = one_line(line), not line.startswith(NO_REAPER_PREFIX)

    def _user(self) -> None:
        self.query_one("#status-user", Static).update(
            Content.from_markup(
                "[dim]│[/] $user [dim]│[/] $clock",
                user=one_line(self.user or "…"),
                clock=clock_text(self.now),
            )
        )

    def watch_redis_ok(self) -> None:
        if self.is_mounted:
            self._services()

    def watch_docker_ok(self) -> None:
        if self.is_mounted:
            self._services()

    def watch_reaper_line(self) -> None:
        if self.is_mounted:
            self._reaper()

    def watch_in_app_reaper(self) -> None:
        if self.is_mounted:
            self._reaper()

    def watch_user(self) -> None:
        if self.is_mounted:
            self._user()

    def watch_now(self) -> None:
        if self.is_mounted:
            self._user()
