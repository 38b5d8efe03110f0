"""The deadline set (``Keys.deadlines``): lease id → ``expires_at``, the reaper's work list.

Due leases are read from here — never from key expiry or keyspace notifications, which lose
information.
"""

from __future__ import annotations

from datetime import datetime

from containerlease_tui.store.base import StoreBase
from containerlease_tui.store.codec import from_ts, scored, texts, ts


class Deadlines(StoreBase):
    """Reading the deadline set, and the reaper's changes to it."""

    async def due(self, now: datetime, limit: int = 1000) -> list[str]:
        """Ids whose deadline is at or before ``now``, earliest first."""
        ids = await self._call(
            lambda: self.redis.zrangebyscore(self.keys.deadlines, "-inf", ts(now), 0, limit)
        )
        return texts(ids)

    async def next_deadline(self) -> datetime | None:
        first = await self._call(
            lambda: self.redis.zrange(self.keys.deadlines, 0, 0, withscores=True)
        )
        rows = scored(first)
        return from_ts(rows[0][1]) if rows else None

    async def deadlines_between(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        rows = await self._call(
            lambda: self.redis.zrangebyscore(
                self.keys.deadlines, ts(start), ts(end), withscores=True
            )
        )
        return [(lease_id, from_ts(score)) for lease_id, score in scored(rows)]

    async def forget_deadline(self, lease_id: str) -> None:
        """Take a lease out of the deadline set (its container is known to be gone)."""
        await self._call(self.redis.zrem, self.keys.deadlines, lease_id)

    async def postpone(self, lease_id: str, until: datetime) -> None:
        """Retry a due lease later, without dropping it from the deadline set."""
        await self._call(
            lambda: self.redis.zadd(self.keys.deadlines, {lease_id: ts(until)}, xx=True)
        )
