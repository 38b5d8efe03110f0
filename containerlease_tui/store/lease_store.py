"""LeaseStore: the facade over the store's parts, one per job.

=================  =====================================================================
part               what
=================  =====================================================================
``records``        lease records: insert (quotas, budget, name: one script), get, update,
                   reindex, listing
``deadlines``      the deadline set the reaper works from
``events``         the event stream
``coordination``   reaper claims, warnings, heartbeats, provisioning liveness
``usage``          what the daily budget has booked so far
=================  =====================================================================

They share :class:`~containerlease_tui.store.base.StoreBase` (client, key schema, scripts, the
typed ``_call``); ``keys`` builds every key name, ``codec`` every value, ``budget`` the daily
budget's bookings, ``transaction`` the bounded optimistic retry.
"""

from __future__ import annotations

from containerlease_tui.config import Settings
from containerlease_tui.store.base import connect
from containerlease_tui.store.coordination import Coordination
from containerlease_tui.store.deadlines import Deadlines
from containerlease_tui.store.events import EventStream
from containerlease_tui.store.protocol import Store
from containerlease_tui.store.records import LeaseRecords
from containerlease_tui.store.usage import Usage


class LeaseStore(LeaseRecords, Deadlines, EventStream, Coordination, Usage):
    """Leases, their indexes, the event stream, reaper claims and heartbeats in Redis."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseStore:
        return cls(connect(settings), settings)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> None:
        await self._call(self.redis.ping)


def _typecheck(store: LeaseStore) -> Store:
    """Never called: mypy checks here that :class:`LeaseStore` satisfies :class:`Store`."""
    return store
