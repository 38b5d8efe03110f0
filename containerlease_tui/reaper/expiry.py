"""Expiry warnings: one ``expiring`` event per lease, deadline and warning point.

The points are relative to the lease's length (:func:`policy.warning_points`): never at
creation, one for a lease too short for every configured point. A warning is owed once per
*deadline*: an extension moves the deadline and so re-arms every point.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from containerlease_tui.models import EventType, Lease
from containerlease_tui.policy import warning_points
from containerlease_tui.reaper.context import PassResult, ReaperContext
from containerlease_tui.reaper.status import humane_left


def warned_ref(lease: Lease) -> str:
    """What the store's ``warn_once`` records a warning under: the lease *and* its deadline,
    so an extension (a new deadline) is warned again at every point."""
    return f"{lease.id}@{int(lease.expires_at.timestamp())}"


class ExpiryWarner:
    """Sends the expiry warnings each pass owes, and says when the next one falls due."""

    def __init__(self, ctx: ReaperContext) -> None:
        self._ctx = ctx
        self._configured = sorted({w for w in ctx.settings.reaper.warnings if w > timedelta(0)})
        # (lease id, warning point, deadline) already warned about: spares Redis a SET NX per
        # lease and pass; warn_once stays the source of truth across reapers.
        self._warned: dict[tuple[str, float, float], float] = {}

    @property
    def _horizon(self) -> timedelta:
        """The widest point any lease can have (a short lease's own point is narrower)."""
        return self._configured[-1] if self._configured else timedelta(0)

    def _points(self, lease: Lease) -> list[timedelta]:
        return warning_points(lease.lifetime, self._configured)

    async def warn(self, now: datetime, result: PassResult) -> None:
        """One ``expiring`` event per lease and warning point (the tightest point reached)."""
        if not self._configured:
            return
        store, log = self._ctx.store, self._ctx.log
        stamp = now.timestamp()
        for key, deadline in list(self._warned.items()):
            if deadline < stamp:
                del self._warned[key]
        rows = await store.deadlines_between(now, now + self._horizon)
        if not rows:
            return
        leases = await store.get_many([lease_id for lease_id, _ in rows])
        for bad in leases.skipped:  # unreadable: no warning (the reaper postpones it when due)
            self._ctx.note_unreadable(bad)
        for lease in leases:
            if not lease.status.is_active:
                continue
            left = (lease.expires_at - now).total_seconds()
            # Widest first: the tightest point reached is the last one at or above ``left``.
            reached = [p for p in self._points(lease) if left <= p.total_seconds()]
            if left <= 0 or not reached:
                continue
            point = reached[-1]
            detail = f"expires in {humane_left(left)}"
            fields = {"lease": lease.id, "owner": lease.owner, "detail": detail}
            if self._ctx.dry_run:
                result.warned += 1
                log.info("would warn", extra={"action": "would-warn", **fields})
                continue
            seen = (lease.id, point.total_seconds(), lease.expires_at.timestamp())
            if seen in self._warned:
                continue
            ttl = timedelta(seconds=left + 60)
            first = await store.warn_once(warned_ref(lease), point, ttl)
            self._warned[seen] = lease.expires_at.timestamp()
            if first:
                await store.emit(EventType.EXPIRING, lease, detail=detail)
                result.warned += 1
                log.info("expiry warning sent", extra={"action": "warn", **fields})

    async def next_moments(self, now: datetime) -> list[datetime]:
        """When the next warning of each lease falls due (within the coming poll interval)."""
        if not self._configured:
            return []
        horizon = self._ctx.interval + timedelta(seconds=1)
        rows = await self._ctx.store.deadlines_between(now, now + self._horizon + horizon)
        if not rows:
            return []
        moments = []
        for lease in await self._ctx.store.get_many([lease_id for lease_id, _ in rows]):
            if not lease.status.is_active:
                continue
            for point in self._points(lease):
                moment = lease.expires_at - point
                if now < moment <= now + horizon:
                    moments.append(moment)
        return sorted(moments)
