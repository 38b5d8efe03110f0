"""MemoryStore: the :class:`~containerlease_tui.ports.Store` protocol in memory.

It behaves like :class:`~containerlease_tui.store.LeaseStore` over Redis, down to the error
classes and messages, as ``tests/contract/test_store_contract.py`` checks against both: quotas
and names checked on insert, the budget booked per UTC day, the deadline index (scores are
float timestamps, as in Redis), claims, warnings, heartbeats and provisioning keys that expire
after their TTL, and an event stream with ``<ms>-<seq>`` ids read after a cursor.

Not modelled: a record's retention (Redis drops it ``retention`` after its end; here it stays)
and the stream's approximate trimming (here exact, at ``stream_maxlen``).

Test controls (not in the protocol): :attr:`down` makes every call fail as an unreachable Redis
does; :meth:`put` and :meth:`put_heartbeat` write state directly, as if it were already in Redis;
:meth:`put_corrupt` a record this version cannot read, :meth:`add_unreadable_event` a stream
entry that is not UTF-8;
:meth:`add_event` appends an event with a chosen time; :attr:`leases` is every record in the order
it was first written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from containerlease_tui.config import Settings
from containerlease_tui.models import EventType, Lease, LeaseEvent, lease_hours, utcnow
from containerlease_tui.store import (
    Charge,
    CorruptRecord,
    EventBatch,
    LeaseBusy,
    LeaseList,
    LeaseNotFound,
    NameTaken,
    QuotaExceeded,
    ReaperBeat,
    StoreError,
    StoreUnavailable,
)
from containerlease_tui.store.events import ACTOR, EventHistory, read_event, since_id

# The real store's slack on "exactly the budget" (lease-hours are rounded to 6 places).
_BUDGET_SLACK = Decimal("0.0001")
_DEFAULT_MAXLEN = 10_000


def _ts(value: datetime) -> float:
    return value.timestamp()


def _from_ts(score: float) -> datetime:
    return datetime.fromtimestamp(score, UTC)


def _event_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise StoreError(
            "Redis error: Invalid stream ID specified as stream command argument"
        ) from None


@dataclass(frozen=True)
class _Entry:
    id: str
    fields: dict[str, str] | None  # None: not UTF-8 (unreadable)


class _Expiring:
    """Keys with a TTL, on the monotonic clock: gone once their time has passed."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._items: dict[str, tuple[str, float | None]] = {}

    def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, until = item
        if until is not None and self._now() >= until:
            del self._items[key]
            return None
        return value

    def set(self, key: str, value: str, ttl: float | None, *, nx: bool = False) -> bool:
        if nx and self.get(key) is not None:
            return False
        self._items[key] = (value, None if ttl is None else self._now() + ttl)
        return True

    def clear(self) -> None:
        self._items.clear()

    def expire(self, key: str, ttl: float) -> bool:
        value = self.get(key)
        if value is None:
            return False
        self._items[key] = (value, self._now() + ttl)
        return True

    def delete(self, key: str) -> bool:
        there = self.get(key) is not None
        self._items.pop(key, None)
        return there


class MemoryStore:
    """Leases, indexes, events, claims and heartbeats in one process's memory."""

    def __init__(
        self, settings: Settings | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._maxlen = settings.redis.stream_maxlen if settings is not None else _DEFAULT_MAXLEN
        self.down: str | None = None
        """When set, every call raises :class:`StoreUnavailable` with this message."""
        self._records: dict[str, Lease] = {}
        self._corrupt: dict[str, tuple[str, str]] = {}  # lease id → (reason, owner)
        self._created: dict[str, float] = {}  # lease id → created_at score (the list indexes)
        self._deadlines: dict[str, float] = {}
        self._budget: dict[tuple[str, str], Decimal] = {}
        self._events: list[_Entry] = []
        self._last_id = (0, 0)
        self._waiters: list[asyncio.Future[None]] = []
        self._keys = _Expiring(monotonic)  # claims, warnings, provisioning, heartbeats
        self._reapers: set[str] = set()
        self.closed = False

    # --- test controls ---------------------------------------------------------------------

    @property
    def leases(self) -> list[Lease]:
        """Every lease on record, in the order it was first written (a copy)."""
        return [lease.model_copy(deep=True) for lease in self._records.values()]

    def put(self, lease: Lease) -> None:
        """Write ``lease`` as it is, with its indexes, no quota and no event: state that is
        already in the store when a test starts."""
        self._corrupt.pop(lease.id, None)
        self._records[lease.id] = lease.model_copy(deep=True)
        self._created.setdefault(lease.id, _ts(lease.created_at))
        if lease.status.is_terminal:
            self._deadlines.pop(lease.id, None)
        else:
            self._deadlines[lease.id] = _ts(lease.expires_at)

    def put_corrupt(
        self,
        lease_id: str,
        reason: str,
        *,
        owner: str = "",
        deadline: datetime | None = None,
        created: datetime | None = None,
    ) -> None:
        """A record this version cannot read (in the listings, and in the deadline set if
        ``deadline`` is given), as a bad hash in Redis would be: reads report it as
        :class:`CorruptRecord` with ``reason``."""
        self._records.pop(lease_id, None)
        self._corrupt[lease_id] = (reason, owner)
        self._created[lease_id] = _ts(created or utcnow())
        if deadline is not None:
            self._deadlines[lease_id] = _ts(deadline)

    def add_unreadable_event(self) -> str:
        """Append a stream entry that is not UTF-8 text (readers skip it); its id."""
        entry_id = self._xadd(EventType.CREATED, "", "", "", None)
        self._events[-1] = _Entry(entry_id, None)
        return entry_id

    def _bad(self, lease_id: str) -> CorruptRecord | None:
        bad = self._corrupt.get(lease_id)
        return CorruptRecord(lease_id, bad[0]) if bad is not None else None

    def put_heartbeat(self, beat: ReaperBeat, ttl: float | None = None) -> None:
        """A reaper's heartbeat as it is (``last_seen`` kept), alive for ``ttl`` s (None: on)."""
        self._keys.set(f"reaper:{beat.key}", _dump_beat(beat), ttl)
        self._reapers.add(beat.key)

    def add_event(
        self,
        event: EventType,
        lease_id: str,
        owner: str = "",
        detail: str = "",
        at: datetime | None = None,
    ) -> str:
        """Append one event (``at`` defaults to now) and wake the readers; its id."""
        return self._xadd(event, lease_id, owner, detail[:500], at)

    # --- plumbing --------------------------------------------------------------------------

    def _check(self) -> None:
        if self.down is not None:
            raise StoreUnavailable(self.down)

    def _xadd(
        self, event: EventType, lease_id: str, owner: str, detail: str, at: datetime | None
    ) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        key = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        self._last_id = key
        entry_id = f"{key[0]}-{key[1]}"
        fields = {
            "type": event.value,
            "lease": lease_id,
            "owner": owner,
            "at": (at or utcnow()).isoformat(),
            "detail": detail,
        }
        if ACTOR.get():  # as the real store: who is acting (``acting_as``), when someone says
            fields["actor"] = ACTOR.get()
        self._events.append(_Entry(entry_id, fields))
        if len(self._events) > self._maxlen:
            del self._events[: len(self._events) - self._maxlen]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return entry_id

    def _active(self, owner: str | None = None) -> list[Lease]:
        return [
            lease
            for lease in self._records.values()
            if lease.status.is_active and (owner is None or lease.owner == owner)
        ]

    def _write(self, lease: Lease, event: EventType | None, detail: str) -> None:
        self._records[lease.id] = lease.model_copy(deep=True)
        if lease.status.is_terminal:
            self._deadlines.pop(lease.id, None)
        else:
            self._deadlines[lease.id] = _ts(lease.expires_at)
        if event is not None:
            self._xadd(event, lease.id, lease.owner, detail[:500], None)

    # --- connection ------------------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True

    async def ping(self) -> None:
        self._check()

    # --- leases ----------------------------------------------------------------------------

    async def insert(
        self,
        lease: Lease,
        *,
        max_per_user: int,
        max_total: int,
        budget_hours: Decimal | None = None,
        detail: str = "",
    ) -> None:
        self._check()
        if lease.id in self._records or lease.id in self._corrupt:
            raise StoreError(f"lease id {lease.id} already exists")
        holder = next(
            (x.id for x in self._active(lease.owner) if x.name == lease.name),
            None,
        )
        if holder is not None:
            raise NameTaken(
                f"{lease.owner} already has an active lease named {lease.name!r} ({holder})",
                holder,
            )
        if len(self._active(lease.owner)) >= max_per_user:
            raise QuotaExceeded(
                f"quota reached: {lease.owner} already has {max_per_user} active lease"
                f"{'s' if max_per_user != 1 else ''} (the limit)"
            )
        if len(self._active()) >= max_total:
            raise QuotaExceeded(f"quota reached: the box already has {max_total} active leases")
        if budget_hours is not None:
            day = (lease.owner, lease.created_at.astimezone(UTC).strftime("%Y%m%d"))
            hours = Decimal(f"{lease_hours(lease.lifetime):.6f}")
            used = self._budget.get(day, Decimal(0))
            if used + hours > budget_hours + _BUDGET_SLACK:
                raise QuotaExceeded(
                    f"daily budget reached: {lease.owner} may book {budget_hours} "
                    "lease-hours per day"
                )
            self._budget[day] = used + hours
        self._records[lease.id] = lease.model_copy(deep=True)
        self._created[lease.id] = _ts(lease.created_at)
        self._deadlines[lease.id] = _ts(lease.expires_at)
        self._xadd(EventType.CREATED, lease.id, lease.owner, detail, None)

    async def get(self, lease_id: str) -> Lease | None:
        self._check()
        if (bad := self._bad(lease_id)) is not None:
            raise bad
        lease = self._records.get(lease_id)
        return lease.model_copy(deep=True) if lease is not None else None

    async def get_many(self, ids: Iterable[str]) -> LeaseList:
        self._check()
        found = LeaseList()
        for lease_id in ids:
            if (bad := self._bad(lease_id)) is not None:
                found.skipped.append(bad)
            elif lease_id in self._records:
                found.append(self._records[lease_id].model_copy(deep=True))
        return found

    async def update(
        self,
        lease_id: str,
        mutate: Callable[[Lease], Lease],
        *,
        event: EventType | None = None,
        detail: str = "",
        charge: Charge | None = None,
        also: Sequence[tuple[EventType, str]] = (),
        unclaimed: bool = False,
    ) -> Lease:
        self._check()
        if unclaimed and self._keys.get(f"claim:{lease_id}") is not None:
            raise LeaseBusy(f"lease {lease_id} is being removed by a reaper")
        if (bad := self._bad(lease_id)) is not None:
            raise bad
        current = self._records.get(lease_id)
        if current is None:
            raise LeaseNotFound(f"no lease {lease_id}")
        new = mutate(current.model_copy(deep=True))
        hours = Decimal(0)
        day: tuple[str, str] | None = None
        if charge is not None:
            day = (charge.owner, (charge.day or utcnow()).astimezone(UTC).strftime("%Y%m%d"))
            used = self._budget.get(day, Decimal(0))
            hours = charge.hours
            if hours < 0:
                hours = -min(-hours, used)  # a refund, down to zero at most
            elif charge.limit is not None and used + hours > charge.limit + _BUDGET_SLACK:
                raise QuotaExceeded(
                    f"daily budget reached: {charge.owner} may book "
                    f"{charge.limit} lease-hours per day ({used:.2f} used)"
                )
        self._write(new, event, detail)
        for extra, extra_detail in also:
            self._xadd(extra, new.id, new.owner, extra_detail[:500], None)
        if day is not None and hours:
            self._budget[day] = self._budget.get(day, Decimal(0)) + hours
        return new.model_copy(deep=True)

    async def reindex(self, lease_id: str) -> Lease:
        """As the real store: the indexes put back from the record, no event, no rewrite."""
        self._check()
        if (bad := self._bad(lease_id)) is not None:
            raise bad
        current = self._records.get(lease_id)
        if current is None:
            raise LeaseNotFound(f"no lease {lease_id}")
        if not current.status.is_terminal:
            self._deadlines[lease_id] = _ts(current.expires_at)
        return current.model_copy(deep=True)

    def _listed(self, owner: str | None, limit: int | None) -> LeaseList:
        ids = [
            lease_id
            for lease_id, lease in self._records.items()
            if owner is None or lease.owner == owner
        ] + [
            lease_id
            for lease_id, (_, bad_owner) in self._corrupt.items()
            if owner is None or bad_owner == owner
        ]
        # ZREVRANGE: highest score first, equal scores in reverse lexicographic order.
        ids.sort(key=lambda lease_id: (self._created[lease_id], lease_id), reverse=True)
        if limit is not None:
            ids = ids[: max(limit, 0)]
        found = LeaseList()
        for lease_id in ids:
            if (bad := self._bad(lease_id)) is not None:
                found.skipped.append(bad)
            else:
                found.append(self._records[lease_id].model_copy(deep=True))
        return found

    async def list_owner(self, owner: str, limit: int | None = None) -> LeaseList:
        self._check()
        return self._listed(owner, limit)

    async def list_all(self, limit: int | None = None) -> LeaseList:
        self._check()
        return self._listed(None, limit)

    async def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        self._check()
        known = [*self._records, *self._corrupt]
        return sorted(x for x in known if x.startswith(prefix))[:limit]

    async def active_ids(self) -> list[str]:
        self._check()
        return sorted(lease.id for lease in self._active())

    # --- deadlines -------------------------------------------------------------------------

    def _by_deadline(self) -> list[tuple[str, float]]:
        return sorted(self._deadlines.items(), key=lambda item: (item[1], item[0]))

    async def due(self, now: datetime, limit: int = 1000) -> list[str]:
        self._check()
        cut = _ts(now)
        return [lease_id for lease_id, score in self._by_deadline() if score <= cut][:limit]

    async def next_deadline(self) -> datetime | None:
        self._check()
        rows = self._by_deadline()
        return _from_ts(rows[0][1]) if rows else None

    async def deadlines_between(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        self._check()
        low, high = _ts(start), _ts(end)
        return [
            (lease_id, _from_ts(score))
            for lease_id, score in self._by_deadline()
            if low <= score <= high
        ]

    async def forget_deadline(self, lease_id: str) -> None:
        self._check()
        self._deadlines.pop(lease_id, None)

    async def postpone(self, lease_id: str, until: datetime) -> None:
        self._check()
        if lease_id in self._deadlines:  # ZADD XX: never adds one
            self._deadlines[lease_id] = _ts(until)

    # --- events ----------------------------------------------------------------------------

    async def emit(
        self, event: EventType, lease: Lease | str, owner: str = "", detail: str = ""
    ) -> str:
        self._check()
        lease_id = lease.id if isinstance(lease, Lease) else lease
        owner = lease.owner if isinstance(lease, Lease) else owner
        return self._xadd(event, lease_id, owner, detail[:500], None)

    async def last_event_id(self) -> str:
        self._check()
        return self._events[-1].id if self._events else "0-0"

    def _after(self, key: tuple[int, int], count: int) -> list[_Entry]:
        return [e for e in self._events if _event_key(e.id) > key][:count]

    async def follow_events(
        self, after: str = "$", block_ms: int | None = None, count: int = 100
    ) -> EventBatch:
        self._check()
        key = self._last_id if after == "$" else _event_key(after)
        entries = self._after(key, count)
        if not entries and block_ms is not None:
            # As the real store: never longer than its socket timeout allows, at least 1 ms.
            if self.settings is not None:
                block_ms = min(block_ms, int(self.settings.redis.socket_timeout * 1000) - 500)
            deadline = time.monotonic() + max(block_ms, 1) / 1000
            while not entries and (left := deadline - time.monotonic()) > 0:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await asyncio.wait_for(waiter, left)
                except TimeoutError:
                    break
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                self._check()
                entries = self._after(key, count)
        events: list[LeaseEvent] = []
        skipped: list[str] = []
        cursor = after
        for entry in entries:
            cursor = entry.id
            fields = entry.fields
            event = read_event(entry.id, fields) if fields is not None else None
            if event is None:  # unreadable, as the real store skips it
                skipped.append(entry.id)
            else:
                events.append(event)
        return EventBatch(events, cursor, skipped)

    async def event_history(self, since: datetime | None = None, limit: int = 1000) -> EventHistory:
        self._check()
        start = _event_key(since_id(since)) if since is not None else (0, 0)
        kept = [e for e in self._events if _event_key(e.id) >= start][-limit:] if limit else []
        events = [
            event
            for entry in kept
            if entry.fields is not None
            and (event := read_event(entry.id, entry.fields)) is not None
        ]
        oldest = self._events[0].id if self._events else None
        return EventHistory(
            events=events,
            cursor=self._events[-1].id if self._events else "0-0",
            oldest=datetime.fromtimestamp(_event_key(oldest)[0] / 1000, UTC) if oldest else None,
            length=len(self._events),
            maxlen=self._maxlen,
        )

    # --- usage -----------------------------------------------------------------------------

    async def budget_used(self, owner: str, day: datetime) -> Decimal:
        self._check()
        used = self._budget.get((owner, day.astimezone(UTC).strftime("%Y%m%d")), Decimal(0))
        return max(used, Decimal(0))

    async def claimed(self, lease_ids: Sequence[str]) -> set[str]:
        self._check()
        return {i for i in lease_ids if self._keys.get(f"claim:{i}") is not None}

    # --- reaper coordination ---------------------------------------------------------------

    async def claim(self, lease_id: str, ttl: timedelta) -> str | None:
        self._check()
        token = secrets.token_hex(16)
        ok = self._keys.set(f"claim:{lease_id}", token, _ms(ttl, floor=False), nx=True)
        return token if ok else None

    async def release_claim(self, lease_id: str, token: str) -> bool:
        self._check()
        key = f"claim:{lease_id}"
        return self._keys.get(key) == token and self._keys.delete(key)

    async def extend_claim(self, lease_id: str, token: str, ttl: timedelta) -> bool:
        self._check()
        key = f"claim:{lease_id}"
        return self._keys.get(key) == token and self._keys.expire(key, _ms(ttl, floor=False))

    async def take_guardian(self, ttl: timedelta) -> str | None:
        self._check()
        token = secrets.token_hex(16)
        return token if self._keys.set("guardian", token, _ms(ttl, floor=False), nx=True) else None

    async def keep_guardian(self, token: str, ttl: timedelta) -> bool:
        self._check()
        return self._keys.get("guardian") == token and self._keys.expire(
            "guardian", _ms(ttl, floor=False)
        )

    async def drop_guardian(self, token: str) -> bool:
        self._check()
        return self._keys.get("guardian") == token and self._keys.delete("guardian")

    async def epoch(self) -> tuple[str, bool]:
        self._check()
        current = self._keys.get("epoch")
        if current:
            return current, False
        token = secrets.token_hex(8)
        self._keys.set("epoch", token, None)
        return token, True

    def lose_everything(self) -> None:
        """What FLUSHALL does to Redis: every record, index, event and key is gone."""
        self._records.clear()
        self._created.clear()
        self._deadlines.clear()
        self._budget.clear()
        self._events.clear()
        self._keys.clear()
        self._reapers.clear()

    async def warn_once(self, lease_id: str, before: timedelta, ttl: timedelta) -> bool:
        self._check()
        key = f"warned:{lease_id}:{int(before.total_seconds())}"
        return self._keys.set(key, "1", max(1, int(ttl.total_seconds())), nx=True)

    async def heartbeat(self, beat: ReaperBeat) -> None:
        self._check()
        beat.last_seen = utcnow().isoformat()
        self._keys.set(f"reaper:{beat.key}", _dump_beat(beat), _ms_seconds(beat.ttl_seconds))
        self._reapers.add(beat.key)

    async def drop_heartbeat(self, beat: ReaperBeat) -> None:
        self._check()
        self._keys.delete(f"reaper:{beat.key}")
        self._reapers.discard(beat.key)

    async def reapers(self) -> list[ReaperBeat]:
        self._check()
        alive: list[ReaperBeat] = []
        for member in sorted(self._reapers):
            raw = self._keys.get(f"reaper:{member}")
            if raw is None:
                self._reapers.discard(member)
            else:
                alive.append(_load_beat(raw))
        return alive

    # --- provisioning liveness -------------------------------------------------------------

    async def provisioning_start(self, lease_id: str, ttl: timedelta) -> bool:
        self._check()
        holder = f"{socket.gethostname()}:{os.getpid()}"
        return self._keys.set(f"provisioning:{lease_id}", holder, _ms(ttl), nx=True)

    async def provisioning_beat(self, lease_id: str, ttl: timedelta) -> None:
        self._check()
        self._keys.expire(f"provisioning:{lease_id}", _ms(ttl))

    async def provisioning_done(self, lease_id: str) -> None:
        self._check()
        self._keys.delete(f"provisioning:{lease_id}")

    async def provisioning_alive(self, ids: Sequence[str]) -> set[str]:
        self._check()
        return {x for x in ids if self._keys.get(f"provisioning:{x}") is not None}


def _ms(ttl: timedelta, *, floor: bool = True) -> float:
    """A TTL as Redis's PX takes it (whole milliseconds, at least 1 where the store says so)."""
    ms = int(ttl.total_seconds() * 1000)
    if floor:
        ms = max(1, ms)
    if ms <= 0:
        raise StoreError("Redis error: invalid expire time in 'set' command")
    return ms / 1000


def _ms_seconds(seconds: float) -> float:
    return max(1, int(seconds * 1000)) / 1000


def _dump_beat(beat: ReaperBeat) -> str:
    return json.dumps(dataclasses.asdict(beat))


def _load_beat(raw: str) -> ReaperBeat:
    return ReaperBeat(**json.loads(raw))
