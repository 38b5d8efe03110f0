"""The lease store: every Redis key ContainerLease uses, and every change to them.

A package, one module per job (``docs/architecture.md``, section *Store*):

* ``keys`` — the one key schema: every Redis key name is built there;
* ``scripts`` — the Lua scripts; ``codec`` — records, events and replies;
* ``errors`` — :class:`StoreError` and its kinds; ``base`` — the client and the typed ``_call``;
* ``transaction`` — the bounded optimistic (WATCH/MULTI/EXEC) retry;
* ``budget`` — daily budget charges and refunds (:class:`Charge`);
* ``records``, ``deadlines``, ``events``, ``coordination`` — the parts of :class:`LeaseStore`;
* ``lease_store`` — :class:`LeaseStore`, the facade; ``protocol`` — :class:`Store`, what its
  users call.

Changes that touch several keys are atomic: the insert with its quota checks is one Lua script;
updates use WATCH/MULTI/EXEC on the lease's hash. Due leases are read from a sorted set of
deadlines — never from key expiry or keyspace notifications, which lose information — and
nothing on a hot path uses ``KEYS`` or ``SCAN``.
"""

from __future__ import annotations

from containerlease_tui.models import LeaseStatus
from containerlease_tui.store.budget import BUDGET_SLACK, Charge
from containerlease_tui.store.codec import LeaseList
from containerlease_tui.store.coordination import ReaperBeat
from containerlease_tui.store.errors import (
    CorruptRecord,
    LeaseBusy,
    LeaseContended,
    LeaseNotFound,
    NameTaken,
    QuotaExceeded,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)
from containerlease_tui.store.events import EventBatch
from containerlease_tui.store.keys import Keys
from containerlease_tui.store.lease_store import LeaseStore
from containerlease_tui.store.protocol import Store
from containerlease_tui.store.transaction import MAX_WATCH_CONFLICTS

__all__ = [
    "BUDGET_SLACK",
    "MAX_WATCH_CONFLICTS",
    "Charge",
    "CorruptRecord",
    "EventBatch",
    "Keys",
    "LeaseBusy",
    "LeaseContended",
    "LeaseList",
    "LeaseNotFound",
    "LeaseStatus",
    "LeaseStore",
    "NameTaken",
    "QuotaExceeded",
    "ReaperBeat",
    "Store",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
]
