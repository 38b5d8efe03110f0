"""The two seams of the core: what :class:`~containerlease_tui.leases.LeaseService` and the
reaper need from a lease store and from a container runtime.

Each protocol lists exactly the methods those two call, with the real signatures of
:class:`~containerlease_tui.store.LeaseStore` (Redis) and :class:`~containerlease_tui.engine.Engine`
(Docker), so mypy proves the real classes satisfy them (see ``tests/contract/typing_checks.py``)
and the in-memory fakes under ``tests/fakes`` are held to the same shape; the contract tests
under ``tests/contract`` hold both to the same behaviour.

Self-contained on purpose: it imports only the public names of the store and engine modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from containerlease_tui.engine import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecResult,
    PullProgress,
)
from containerlease_tui.models import EventType, Lease
from containerlease_tui.store import Charge, EventBatch, ReaperBeat

__all__ = ["Runtime", "Store"]


class Store(Protocol):
    """Leases, their indexes, the event stream, reaper claims and heartbeats.

    Errors are :class:`~containerlease_tui.store.StoreError` and its subclasses
    (``StoreUnavailable``, ``QuotaExceeded``, ``NameTaken``, ``LeaseNotFound``, ``LeaseBusy``).
    """

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # --- leases ----------------------------------------------------------------------------

    async def insert(
        self,
        lease: Lease,
        *,
        max_per_user: int,
        max_total: int,
        budget_hours: Decimal | None = ...,
        detail: str = ...,
    ) -> None:
        """Write a new lease and its ``created`` event, atomically checking the quotas."""
        ...

    async def get(self, lease_id: str) -> Lease | None: ...

    async def get_many(self, ids: Iterable[str]) -> list[Lease]:
        """The leases on record among ``ids``, in that order (missing ones left out)."""
        ...

    async def update(
        self,
        lease_id: str,
        mutate: Callable[[Lease], Lease],
        *,
        event: EventType | None = ...,
        detail: str = ...,
        charge: Charge | None = ...,
        also: Sequence[tuple[EventType, str]] = ...,
        unclaimed: bool = ...,
    ) -> Lease:
        """Apply ``mutate`` atomically; nothing is written when it raises."""
        ...

    async def list_owner(self, owner: str, limit: int | None = ...) -> list[Lease]: ...

    async def list_all(self, limit: int | None = ...) -> list[Lease]: ...

    async def ids_with_prefix(self, prefix: str, limit: int = ...) -> list[str]: ...

    async def active_ids(self) -> list[str]: ...

    # --- deadlines -------------------------------------------------------------------------

    async def due(self, now: datetime, limit: int = ...) -> list[str]: ...

    async def next_deadline(self) -> datetime | None: ...

    async def deadlines_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[str, datetime]]: ...

    async def forget_deadline(self, lease_id: str) -> None: ...

    async def postpone(self, lease_id: str, until: datetime) -> None: ...

    # --- events ----------------------------------------------------------------------------

    async def emit(
        self, event: EventType, lease: Lease | str, owner: str = ..., detail: str = ...
    ) -> str: ...

    async def last_event_id(self) -> str: ...

    async def follow_events(
        self, after: str = ..., block_ms: int | None = ..., count: int = ...
    ) -> EventBatch: ...

    # --- reaper coordination ---------------------------------------------------------------

    async def claim(self, lease_id: str, ttl: timedelta) -> str | None: ...

    async def release_claim(self, lease_id: str, token: str) -> bool: ...

    async def extend_claim(self, lease_id: str, token: str, ttl: timedelta) -> bool: ...

    async def warn_once(self, lease_id: str, before: timedelta, ttl: timedelta) -> bool: ...

    async def heartbeat(self, beat: ReaperBeat) -> None: ...

    async def drop_heartbeat(self, beat: ReaperBeat) -> None: ...

    async def reapers(self) -> list[ReaperBeat]: ...

    # --- provisioning liveness -------------------------------------------------------------

    async def provisioning_start(self, lease_id: str, ttl: timedelta) -> bool: ...

    async def provisioning_beat(self, lease_id: str, ttl: timedelta) -> None: ...

    async def provisioning_done(self, lease_id: str) -> None: ...

    async def provisioning_alive(self, ids: Sequence[str]) -> set[str]: ...


class Runtime(Protocol):
    """Leased containers, their images, logs and commands.

    Errors are :class:`~containerlease_tui.engine.EngineError` and its subclasses
    (``EngineUnavailable``, ``ImageUnavailable``).
    """

    async def close(self) -> None: ...

    async def ping(self) -> str:
        """The engine's version."""
        ...

    # --- images ----------------------------------------------------------------------------

    async def image_present(self, ref: str) -> bool: ...

    async def image_seen(self, ref: str) -> bool: ...

    async def ensure_image(
        self, ref: str, on_progress: Callable[[PullProgress], None] | None = ...
    ) -> None:
        """Return at once if ``ref`` is local, else pull it (``ImageUnavailable`` on failure)."""
        ...

    # --- containers ------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str: ...

    async def start(self, cid: str) -> None: ...

    async def stop(self, cid: str, timeout: int = ...) -> None: ...  # noqa: ASYNC109

    async def restart(self, cid: str) -> None: ...

    async def remove(self, cid: str) -> bool: ...

    async def inspect(self, cid: str) -> ContainerInfo | None: ...

    async def stats(self, cid: str) -> ContainerStats: ...

    async def list_leased(self, instance: str | None = ...) -> list[ContainerInfo]: ...

    def logs(self, cid: str, *, follow: bool, tail: int | str = ...) -> AsyncIterator[str]: ...

    async def shell(self, cid: str, cmd: Sequence[str] = ...) -> int: ...

    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult: ...
