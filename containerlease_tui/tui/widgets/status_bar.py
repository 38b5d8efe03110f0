"""The one-line status bar: Redis, Docker, the reaper, the user and a clock."""

from __future__ import annotations

from datetime import datetime

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from containerlease_tui.models import utcnow
from containerlease_tui.tui.formatting import clock_text


def _state(ok: bool | None) -> str:
    if ok is None:
        return "[$warning]◌[/]"
    return "[$success]●[/]" if ok else "[$error]✖[/]"


class StatusBar(Widget):
    """Connection states, whether a reaper is alive, who is using the app and the time (UTC)."""

    redis_ok: reactive[bool | None] = reactive(None)
    docker_ok: reactive[bool | None] = reactive(None)
    in_app_reaper: reactive[bool | None] = reactive(None)
    """True: running in this app; False: failed; None: not started here (``--no-reaper``)."""
    reapers: reactive[int | None] = reactive(None)
    """Reapers with a fresh heartbeat in Redis (None: unknown)."""
    user: reactive[str] = reactive("")
    now: reactive[datetime] = reactive(utcnow)

    def render(self) -> Content:
        reaper_ok: bool | None
        if self.in_app_reaper:
            reaper_ok, what = True, "in-app"
            if self.reapers is not None and self.reapers > 1:
                what += f" +{self.reapers - 1}"
        elif self.reapers is None:
            reaper_ok, what = None, "unknown"
        elif self.reapers:
            reaper_ok, what = True, f"{self.reapers} alive"
        else:
            reaper_ok, what = False, "none running"
        return Content.from_markup(
            f"{_state(self.redis_ok)} Redis  {_state(self.docker_ok)} Docker  "
            f"{_state(reaper_ok)} Reaper $reaper  [dim]│[/] $user  [dim]│[/] $clock",
            reaper=what,
            user=self.user or "…",
            clock=clock_text(self.now),
        )
