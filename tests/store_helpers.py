"""Reads of the store that only tests need (counts, the whole event stream), kept out of
``containerlease_tui.store`` so the package holds only what the app uses."""

from __future__ import annotations

from decimal import Decimal

from containerlease_tui.models import LeaseEvent, utcnow
from containerlease_tui.store import LeaseStore


async def read_events(
    store: LeaseStore, after: str = "$", block_ms: int | None = None, count: int = 100
) -> list[LeaseEvent]:
    """Events after stream id ``after`` (``"0"``: from the start), waiting ``block_ms``."""
    return (await store.follow_events(after, block_ms, count)).events


async def events_for(store: LeaseStore, lease_id: str, count: int = 10_000) -> list[LeaseEvent]:
    """Every event of one lease still in the stream, oldest first."""
    return [e for e in await read_events(store, "0", count=count) if e.lease == lease_id]


async def active_count(store: LeaseStore, owner: str | None = None) -> int:
    """Active leases of ``owner`` (or of the whole box)."""
    key = store.keys.active_owner(owner) if owner else store.keys.active
    return int(await store.redis.scard(key))


async def budget_used(store: LeaseStore, owner: str) -> Decimal:
    """Lease-hours ``owner`` has booked today (UTC)."""
    raw = await store.redis.get(store.keys.budget(owner, utcnow()))
    return Decimal(str(raw or "0"))
