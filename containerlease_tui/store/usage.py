"""What has been used: a user's daily budget booked so far (``Keys.budget``), for the shells to
show before a request is made rather than refuse it after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from containerlease_tui.store.base import StoreBase
from containerlease_tui.store.codec import optional_text


class Usage(StoreBase):
    """Reads of the daily budget's bookings."""

    async def budget_used(self, owner: str, day: datetime) -> Decimal:
        """Lease-hours ``owner`` has booked on ``day``'s UTC day (0 when nothing is booked)."""
        raw = optional_text(await self._call(self.redis.get, self.keys.budget(owner, day)))
        try:
            used = Decimal(raw or "0")
        except InvalidOperation:
            return Decimal(0)
        return used if used.is_finite() and used > 0 else Decimal(0)

    async def claimed(self, lease_ids: Sequence[str]) -> set[str]:
        """Which of ``lease_ids`` a reaper holds a claim on right now."""
        ids = list(lease_ids)
        if not ids:
            return set()

        async def run() -> list[object]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lease_id in ids:
                    pipe.exists(self.keys.claim(lease_id))
                replies: list[object] = await pipe.execute()
                return replies

        replies = await self._call(run)
        return {lease_id for lease_id, there in zip(ids, replies, strict=True) if there}
