"""Expiry warnings: one ``expiring`` event per lease at each ``[reaper] warnings`` point."""

from __future__ import annotations

from datetime import datetime, timedelta

from containerlease_tui.models import EventType
from containerlease_tui.reaper.context import PassResult, ReaperContext
from containerlease_tui.reaper.status import humane_left


class ExpiryWarner:
    """Sends the expiry warnings each pass owes, and says when the next one falls due."""

    def __init__(self, ctx: ReaperContext) -> None:
        self._ctx = ctx
        self._points = sorted({w for w in ctx.settings.reaper.warnings if w > timedelta(0)})
        # (lease id, warning point, deadline) already warned about: spares Redis a SET NX per
        # lease and pass; warn_once stays the source of truth across reapers.
        self._warned: dict[tuple[str, float, float], float] = {}

    async def warn(self, now: datetime, result: PassResult) -> None:
        """One ``expiring`` event per lease and warning point (the tightest point reached)."""
        if not self._points:
            return
        store, log = self._ctx.store, self._ctx.log
        stamp = now.timestamp()
        for key, deadline in list(self._warned.items()):
            if deadline < stamp:
                del self._warned[key]
        rows = await store.deadlines_between(now, now + self._points[-1])
        if not rows:
            return
        leases = await store.get_many([lease_id for lease_id, _ in rows])
        for bad in leases.skipped:  # unreadable: no warning (the reaper postpones it when due)
            self._ctx.note_unreadable(bad)
        for lease in leases:
            if not lease.status.is_active:
                continue
            left = (lease.expires_at - now).total_seconds()
            point = next((p for p in self._points if left <= p.total_seconds()), None)
            if left <= 0 or point is None:
                continue
            if lease.created_at > lease.expires_at - point:
                continue  # shorter than the warning point: it never was that far from its end
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
            first = await store.warn_once(lease.id, point, ttl)
            self._warned[seen] = lease.expires_at.timestamp()
            if first:
                await store.emit(EventType.EXPIRING, lease, detail=detail)
                result.warned += 1
                log.info("expiry warning sent", extra={"action": "warn", **fields})

    async def next_moments(self, now: datetime) -> list[datetime]:
        """When the next warning of each point falls due (within the coming poll interval)."""
        horizon = self._ctx.interval + timedelta(seconds=1)
        moments = []
        for point in self._points:
            rows = await self._ctx.store.deadlines_between(now + point, now + point + horizon)
            if rows:
                moments.append(rows[0][1] - point)
        return moments
