"""The service's side of the reaper: is one alive, start one, run one in-app."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.models import (
    utcnow,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.store import (
    StoreError,
)
from containerlease_tui.store.events import REAPER_ACTOR, acting_as

if TYPE_CHECKING:
    from containerlease_tui.reaper.guardian import GuardianStart

from containerlease_tui.service.base import ServiceBase, translated
from containerlease_tui.service.reports import ReaperOverview


class ReaperControl(ServiceBase):
    """Reaper status and overview, the guardian, the in-app reaper."""

    async def reaper_status(self) -> ReaperStatus:
        """The reapers alive for this installation (``doctor``, the app's status bar)."""
        from containerlease_tui.reaper import reaper_report

        with translated():
            return await reaper_report(self.store)

    async def run_reaper(self, stop: asyncio.Event, *, mode: str = "in-app") -> None:
        """Run a reaper over this service's store and engine until ``stop`` is set (the
        app's in-app reaper: the shells never build one from the store and engine)."""
        from containerlease_tui.reaper import Reaper  # the reaper is not needed by most commands

        with acting_as(REAPER_ACTOR):  # this task's events are the reaper's
            await Reaper(self.settings, self.store, self.engine, mode=mode).run(stop)

    async def ensure_reaper(self) -> GuardianStart | None:
        """Make sure some reaper enforces the active leases: start the guardian if none is alive
        (what happened, for the user; None when nothing was needed or Redis cannot tell)."""
        from containerlease_tui.reaper.guardian import ensure_reaper

        try:
            return await ensure_reaper(self.settings, self.store)
        except (StoreError, OSError):
            return None

    async def reaper_overview(
        self, now: datetime | None = None, *, upcoming: int = 10
    ) -> ReaperOverview:
        """Every live reaper, the claims held now on due leases, and the next deadlines."""
        now = now or utcnow()
        with translated():
            status = await self.reaper_status()
            due = await self.store.due(now)
            claimed = sorted(await self.store.claimed(due))
            soon = await self.store.deadlines_between(now, now + timedelta(days=7))
        return ReaperOverview(status, claimed, soon[:upcoming], now)
