"""Read-only views: leases, a lease's status, events, activity, spend, capacity, health."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from containerlease_tui import channel
from containerlease_tui.activity import EventFilter, visible
from containerlease_tui.engine import (
    ContainerInfo,
    ContainerStats,
    EngineError,
)
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.models import (
    LeaseEvent,
    lease_hours,
    utcnow,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.spend import (
    Capacity,
    Outlook,
    TeamSpend,
    capacity_of,
    cost_within,
    day_start,
    team_spend,
)
from containerlease_tui.store import (
    EventBatch,
    LeaseList,
    StoreError,
)
from containerlease_tui.store.events import EventHistory

if TYPE_CHECKING:
    pass

from containerlease_tui.service.base import ServiceBase, translated
from containerlease_tui.service.reports import HealthReport, LeaseStatusReport


class ViewOps(ServiceBase):
    """Lists, status, the event stream and audit trail, spend, capacity, health."""

    async def list(self, *, all_users: bool = False) -> LeaseList:
        """The user's leases (everybody's with ``all_users``), newest first; records that cannot
        be read are left out and named in the result's ``skipped``."""
        with translated():
            if all_users:
                return await self.store.list_all()
            return await self.store.list_owner(self.user)

    async def status(self, ref: str) -> LeaseStatusReport:
        """The lease with its container's state and usage; the owner (or an admin) only."""
        lease = await self.resolve(ref)
        self._authorize(lease, "see the status of")
        info: ContainerInfo | None = None
        stats: ContainerStats | None = None
        if lease.docker_id:
            with translated():
                cid = await self._own(lease)
                info = await self.engine.inspect(cid)
                if info is not None and info.running:
                    stats = await self.engine.stats(cid)
        connected: bool | None = None
        if lease.channel and info is not None and info.running:
            connected = await channel.probe(self._channel_folder(lease.id), info.id)
        return LeaseStatusReport(lease, info, stats, connected)

    # --- events and activity ----------------------------------------------------------

    async def last_event_id(self) -> str:
        """The event stream's newest id: the cursor to follow from, so nothing is missed
        between loading the leases and the first read."""
        with translated():
            return await self.store.last_event_id()

    async def events(self, after: str = "$", block_ms: int | None = 2000) -> EventBatch:
        """The next events after stream id ``after``, waiting up to ``block_ms``."""
        with translated():
            return await self.store.follow_events(after, block_ms=block_ms)

    def shown(
        self, events: Sequence[LeaseEvent], filt: EventFilter | None = None
    ) -> builtins.list[LeaseEvent]:
        """``events`` that match ``filt``, as this user may see them (``activity.visible``:
        another user's details redacted for a non-admin)."""
        chosen = filt.select(events) if filt is not None else builtins.list(events)
        return [visible(e, self.user, self.is_admin) for e in chosen]

    async def event_log(
        self, filt: EventFilter | None = None, *, limit: int = 1000
    ) -> EventHistory:
        """The audit trail, newest last: the last ``limit`` events (since ``filt.since``) that
        match ``filt``, with the cursor to follow from and how far back the capped stream goes."""
        with translated():
            history = await self.store.event_history(
                filt.since if filt is not None else None, limit=limit
            )
        return replace(history, events=self.shown(history.events, filt))

    # --- spend, capacity, health ------------------------------------------------------

    async def spend(self, now: datetime | None = None) -> TeamSpend:
        """Spend per user (everybody for an admin, else this user) and the totals."""
        now = now or utcnow()
        with translated():
            leases = await self.store.list_all()
        return team_spend(leases, now, me=self.user, everyone=self.is_admin)

    async def outlook(self, now: datetime | None = None) -> Outlook:
        """Where this user stands before provisioning: spend and budget today, the quotas."""
        now = now or utcnow()
        limits = self.settings.limits
        with translated():
            leases = await self.store.list_all()
            booked = (
                await self.store.budget_used(self.user, now)
                if limits.daily_budget_hours is not None
                else lease_hours(timedelta(0))
            )
        mine = [x for x in leases if x.owner == self.user]
        today = day_start(now)
        return Outlook(
            user=self.user,
            spent_today=sum((cost_within(x, today, now) for x in mine), Decimal("0.0000")),
            booked_hours=booked,
            budget_hours=limits.daily_budget_hours,
            active_mine=sum(1 for x in mine if x.status.is_active),
            max_per_user=limits.max_leases_per_user,
            active_total=sum(1 for x in leases if x.status.is_active),
            max_total=limits.max_leases_total,
        )

    async def capacity(self) -> Capacity:
        """The box's limits against what the active leases reserve (engine: ``NCPU``,
        ``MemTotal``; None when the engine cannot be asked)."""
        with translated():
            leases = [x for x in await self.store.list_all() if x.status.is_active]
        try:
            host = await self.engine.host_info()
            cpus, memory = host.cpus or None, host.memory or None
        except EngineError:
            cpus = memory = None
        return capacity_of(leases, self.settings.limits.max_leases_total, cpus, memory)

    async def health(self) -> HealthReport:
        try:
            await self.store.ping()
            redis_ok, redis_detail = True, "connected"
        except StoreError as exc:
            redis_ok, redis_detail = False, str(exc)
        try:
            version = await self.engine.ping()
            docker_ok, docker_detail = True, f"engine {version}"
        except EngineError as exc:
            docker_ok, docker_detail = False, str(exc)
        return HealthReport(redis_ok, redis_detail, docker_ok, docker_detail)
