"""LeaseStore: every Redis key ContainerLease uses, and every change to them.

This module is the one place that knows the key schema (see :class:`Keys` and
``docs/architecture.md``). Changes that touch several keys are atomic: the insert with its quota
checks is one Lua script; updates use WATCH/MULTI/EXEC on the lease's hash. Due leases are read
from a sorted set of deadlines — never from key expiry or keyspace notifications, which lose
information — and nothing on a hot path uses ``KEYS`` or ``SCAN``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from containerlease_tui.config import Settings, redact_url
from containerlease_tui.models import (
    EventType,
    Lease,
    LeaseEvent,
    LeaseStatus,
    lease_hours,
    utcnow,
)

T = TypeVar("T")


class StoreError(Exception):
    """A problem with the lease store, phrased for a user."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""


class QuotaExceeded(StoreError):
    """The insert would break a quota; nothing was written."""


class LeaseNotFound(StoreError):
    """No record for that lease id (never existed, or its retention has passed)."""


class NameTaken(StoreError):
    """The owner already has an active lease of that name; nothing was written."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseBusy(StoreError):
    """A reaper holds a claim on the lease right now (it is being removed)."""


@dataclass(frozen=True)
class EventBatch:
    """What one read of the event stream returned, and where the next read starts.

    ``cursor`` is the id of the last entry read, parsable or not, so an entry this version
    cannot read is stepped over instead of being returned again and again.
    """

    events: list[LeaseEvent]
    cursor: str


# Lease-hours are stored rounded to 6 places; this keeps "exactly the budget" allowed.
BUDGET_SLACK = Decimal("0.0001")


class Keys:
    """The key schema. Every key starts with the configured prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.deadlines = f"{prefix}:deadlines"
        self.leases = f"{prefix}:leases"
        self.ids = f"{prefix}:ids"
        self.active = f"{prefix}:active"
        self.events = f"{prefix}:events"
        self.reapers = f"{prefix}:reapers"

    def reaper(self, member: str) -> str:
        return f"{self.prefix}:reaper:{member}"

    def names(self, owner: str) -> str:
        return f"{self.prefix}:names:{owner}"

    def provisioning(self, lease_id: str) -> str:
        return f"{self.prefix}:provisioning:{lease_id}"

    def lease(self, lease_id: str) -> str:
        return f"{self.prefix}:lease:{lease_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    def active_owner(self, owner: str) -> str:
        return f"{self.prefix}:active:{owner}"

    def budget(self, owner: str, day: datetime) -> str:
        return f"{self.prefix}:budget:{owner}:{day.strftime('%Y%m%d')}"

    def claim(self, lease_id: str) -> str:
        return f"{self.prefix}:claim:{lease_id}"

    def warned(self, lease_id: str, before: timedelta) -> str:
        return f"{self.prefix}:warned:{lease_id}:{int(before.total_seconds())}"


# KEYS: lease, active, active_owner, deadlines, leases, owner_index, ids, budget, events, names
# ARGV: id, data, status, owner, expires_ts, created_ts, expire_at, max_user, max_total,
#       budget_limit (-1 = none), hours, budget_expire_at, maxlen, at, detail, name
_INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local holder = redis.call('HGET', KEYS[10], ARGV[16])
if holder and redis.call('SISMEMBER', KEYS[2], holder) == 1 then return 'name:' .. holder end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[8]) then return 'user' end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[9]) then return 'total' end
local limit = tonumber(ARGV[10])
if limit >= 0 then
  local used = tonumber(redis.call('GET', KEYS[8]) or '0')
  if used + tonumber(ARGV[11]) > limit + 1e-4 then return 'budget' end
  redis.call('INCRBYFLOAT', KEYS[8], ARGV[11])
  redis.call('EXPIREAT', KEYS[8], ARGV[12])
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'status', ARGV[3], 'owner', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[7], 0, ARGV[1])
redis.call('HSET', KEYS[10], ARGV[16], ARGV[1])
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[13], '*', 'type', 'created', 'lease', ARGV[1],
  'owner', ARGV[4], 'at', ARGV[14], 'detail', ARGV[15])
return 'ok'
"""

# Compare-and-delete: only the holder of the token releases the claim.
_RELEASE_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A closed lease gives its name back, unless another active lease holds it by now.
_FREE_NAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

_EXTEND_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass
class ReaperBeat:
    """A reaper's heartbeat: who it is and what it has done."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = ""
    mode: str = "headless"
    started_at: str = field(default_factory=lambda: utcnow().isoformat())
    last_seen: str = field(default_factory=lambda: utcnow().isoformat())
    last_pass: str | None = None
    passes: int = 0
    reaped: int = 0
    failed: int = 0
    ttl_seconds: float = 30.0

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}"

    @property
    def last_seen_at(self) -> datetime:
        return datetime.fromisoformat(self.last_seen)


@dataclass(frozen=True)
class Charge:
    """Lease-hours booked against (``hours`` > 0) or given back to (``hours`` < 0) an owner's
    daily budget by an update. ``limit`` is the budget a booking must stay within."""

    owner: str
    hours: Decimal
    limit: Decimal | None = None
    day: datetime | None = None
    """The UTC day whose budget it books or refunds; None: today. A refund names the day the
    hours were booked (the lease's ``created_at``), so one that crosses midnight gives them back
    where they were taken, not to a new day."""


def _beat(raw: str | None) -> ReaperBeat | None:
    if not raw:
        return None
    try:
        return ReaperBeat(**json.loads(raw))
    except (TypeError, ValueError):
        return None  # written by another version: treat as absent


def _ts(value: datetime) -> float:
    return value.timestamp()


def _map_errors(exc: RedisError, url: str) -> StoreError:
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return StoreUnavailable(f"Redis at {redact_url(url)} is unreachable: {_short(exc)}")
    return StoreError(f"Redis error: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class LeaseStore:
    """Leases, their indexes, the event stream, reaper claims and heartbeats in Redis."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.redis.key_prefix)
        self._retention = settings.redis.retention
        self._maxlen = settings.redis.stream_maxlen
        self._insert = client.register_script(_INSERT)
        self._release_claim = client.register_script(_RELEASE_CLAIM)
        self._extend_claim = client.register_script(_EXTEND_CLAIM)

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseStore:
        cfg = settings.redis
        extra: dict[str, object] = {}
        if cfg.tls_ca is not None:
            extra["ssl_ca_certs"] = str(cfg.tls_ca)
        client = aioredis.Redis.from_url(
            cfg.url,
            decode_responses=True,
            socket_timeout=cfg.socket_timeout,
            socket_connect_timeout=min(cfg.socket_timeout, 3.0),
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=15,
            **extra,  # type: ignore[arg-type]
        )
        return cls(client, settings)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _call(self, make: Callable[[], object]) -> T:
        """Run one Redis call, mapping its errors to the store's. redis-py types results as
        ``bytes | str`` whatever ``decode_responses`` says, so each caller names the type it
        gets (``str`` here: the client decodes) by annotating the result."""
        try:
            return await make()  # type: ignore[misc, no-any-return]
        except RedisError as exc:
            raise _map_errors(exc, self.settings.redis.url) from None
        except OSError as exc:
            raise StoreUnavailable(
                f"Redis at {redact_url(self.settings.redis.url)} is unreachable: {_short(exc)}"
            ) from None

    async def ping(self) -> None:
        await self._call(self.redis.ping)

    # --- leases ----------------------------------------------------------------------------

    def _expire_at(self, lease: Lease) -> int:
        end = lease.ended_at if lease.status.is_terminal and lease.ended_at else lease.expires_at
        return int(_ts(max(end, lease.expires_at) + self._retention)) + 1

    async def insert(
        self,
        lease: Lease,
        *,
        max_per_user: int,
        max_total: int,
        budget_hours: Decimal | None = None,
        detail: str = "",
    ) -> None:
        """Write a new lease and its ``created`` event, atomically checking the quotas."""
        k = self.keys
        now = utcnow()
        hours = lease_hours(lease.lifetime)
        # Booked on the lease's own day (its created_at, a moment before now), so a refund can
        # find the same day again: Charge.day.
        booked = lease.created_at
        day_end = datetime(booked.year, booked.month, booked.day, tzinfo=UTC) + timedelta(days=2)
        result: str | list[str] | None = await self._call(
            lambda: self._insert(
                keys=[
                    k.lease(lease.id),
                    k.active,
                    k.active_owner(lease.owner),
                    k.deadlines,
                    k.leases,
                    k.owner(lease.owner),
                    k.ids,
                    k.budget(lease.owner, booked),
                    k.events,
                    k.names(lease.owner),
                ],
                args=[
                    lease.id,
                    lease.model_dump_json(),
                    lease.status.value,
                    lease.owner,
                    _ts(lease.expires_at),
                    _ts(lease.created_at),
                    self._expire_at(lease),
                    max_per_user,
                    max_total,
                    str(budget_hours) if budget_hours is not None else "-1",
                    f"{hours:.6f}",
                    int(_ts(day_end)),
                    self._maxlen,
                    now.isoformat(),
                    detail,
                    lease.name,
                ],
            )
        )
        if result == "ok":
            return
        if isinstance(result, str) and result.startswith("name:"):
            holder = result.removeprefix("name:")
            raise NameTaken(
                f"{lease.owner} already has an active lease named {lease.name!r} ({holder})",
                holder,
            )
        if result == "exists":
            raise StoreError(f"lease id {lease.id} already exists")
        if result == "user":
            raise QuotaExceeded(
                f"quota reached: {lease.owner} already has {max_per_user} active lease"
                f"{'s' if max_per_user != 1 else ''} (the limit)"
            )
        if result == "total":
            raise QuotaExceeded(f"quota reached: the box already has {max_total} active leases")
        if result == "budget":
            raise QuotaExceeded(
                f"daily budget reached: {lease.owner} may book {budget_hours} lease-hours per day"
            )
        raise StoreError(f"unexpected answer from the insert script: {result!r}")

    async def get(self, lease_id: str) -> Lease | None:
        raw: str | None = await self._call(
            lambda: self.redis.hget(self.keys.lease(lease_id), "data")
        )
        return Lease.model_validate_json(raw) if raw else None

    async def get_many(self, ids: Iterable[str]) -> list[Lease]:
        id_list = list(ids)
        if not id_list:
            return []

        async def run() -> list[str | None]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lease_id in id_list:
                    pipe.hget(self.keys.lease(lease_id), "data")
                return await pipe.execute()

        raws: list[str | None] = await self._call(run)
        return [Lease.model_validate_json(raw) for raw in raws if raw]

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
        """Apply ``mutate`` to the stored lease atomically (optimistic WATCH/MULTI, retried).

        ``mutate`` may raise (e.g. an illegal transition): nothing is written then. Indexes
        follow the new status: active sets, deadlines (left only when the lease is closed),
        the record's own expiry, the owner's name index. A ``charge`` books lease-hours against
        the daily budget in the same transaction and raises :class:`QuotaExceeded` when it
        would overflow; a negative one gives hours back (never below zero). ``also`` lists
        further events written in the same transaction (e.g. ``expired`` then ``reaped``).
        ``unclaimed`` refuses (:class:`LeaseBusy`) while a reaper holds a claim on the lease,
        so a change cannot slip in between a reaper's decision and its removal.
        """
        k = self.keys
        key = k.lease(lease_id)

        async def run() -> Lease:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        budget_key = (
                            k.budget(charge.owner, charge.day or utcnow()) if charge else None
                        )
                        watched = [key]
                        if budget_key:
                            watched.append(budget_key)
                        if unclaimed:
                            watched.append(k.claim(lease_id))
                        await pipe.watch(*watched)
                        if unclaimed and await pipe.exists(k.claim(lease_id)):
                            raise LeaseBusy(f"lease {lease_id} is being removed by a reaper")
                        raw = await pipe.hget(key, "data")
                        if raw is None:
                            raise LeaseNotFound(f"no lease {lease_id}")
                        new = mutate(Lease.model_validate_json(raw))
                        hours = Decimal(0)
                        if charge and budget_key:
                            used = Decimal(str(await pipe.get(budget_key) or "0"))
                            hours = charge.hours
                            if hours < 0:
                                hours = -min(-hours, used)  # a refund, down to zero at most
                            elif charge.limit is not None and (
                                used + hours > charge.limit + BUDGET_SLACK
                            ):
                                raise QuotaExceeded(
                                    f"daily budget reached: {charge.owner} may book "
                                    f"{charge.limit} lease-hours per day ({used:.2f} used)"
                                )
                        pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                        self._write(pipe, new, event, detail)
                        for extra, extra_detail in also:
                            self._xadd(pipe, extra, new.id, new.owner, extra_detail)
                        if budget_key and hours:
                            pipe.incrbyfloat(budget_key, float(hours))
                            pipe.expire(budget_key, 3 * 86400)
                        await pipe.execute()
                        return new
                    except WatchError:
                        continue

        return await self._call(run)

    def _write(
        self, pipe: aioredis.client.Pipeline, lease: Lease, event: EventType | None, detail: str
    ) -> None:
        k = self.keys
        key = k.lease(lease.id)
        pipe.hset(key, mapping={"data": lease.model_dump_json(), "status": lease.status.value})
        pipe.expireat(key, self._expire_at(lease))
        if lease.status.is_active:
            pipe.sadd(k.active, lease.id)
            pipe.sadd(k.active_owner(lease.owner), lease.id)
        else:
            pipe.srem(k.active, lease.id)
            pipe.srem(k.active_owner(lease.owner), lease.id)
            pipe.eval(_FREE_NAME, 1, k.names(lease.owner), lease.name, lease.id)
        if lease.status.is_terminal:
            pipe.zrem(k.deadlines, lease.id)
        else:
            pipe.zadd(k.deadlines, {lease.id: _ts(lease.expires_at)})
        if event is not None:
            self._xadd(pipe, event, lease.id, lease.owner, detail)

    def _xadd(
        self, pipe: aioredis.Redis, event: EventType, lease_id: str, owner: str, detail: str
    ) -> None:
        pipe.xadd(
            self.keys.events,
            {
                "type": event.value,
                "lease": lease_id,
                "owner": owner,
                "at": utcnow().isoformat(),
                "detail": detail[:500],
            },
            maxlen=self._maxlen,
            approximate=True,
        )

    async def forget_deadline(self, lease_id: str) -> None:
        """Take a lease out of the deadline set (its container is known to be gone)."""
        await self._call(lambda: self.redis.zrem(self.keys.deadlines, lease_id))

    async def postpone(self, lease_id: str, until: datetime) -> None:
        """Retry a due lease later, without dropping it from the deadline set."""
        await self._call(
            lambda: self.redis.zadd(self.keys.deadlines, {lease_id: _ts(until)}, xx=True)
        )

    async def _list(self, index: str, limit: int | None) -> list[Lease]:
        end = -1 if limit is None else limit - 1
        ids: list[str] = await self._call(lambda: self.redis.zrevrange(index, 0, end))
        leases = await self.get_many(ids)
        found = {lease.id for lease in leases}
        gone = [lease_id for lease_id in ids if lease_id not in found]
        if gone:  # records past their retention: drop them from the index too
            await self._call(lambda: self.redis.zrem(index, *gone))
        return leases

    async def list_owner(self, owner: str, limit: int | None = None) -> list[Lease]:
        """One owner's leases, newest first; reads only that owner's index."""
        return await self._list(self.keys.owner(owner), limit)

    async def list_all(self, limit: int | None = None) -> list[Lease]:
        """Every lease still on record, newest first."""
        return await self._list(self.keys.leases, limit)

    async def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of leases on record starting with ``prefix`` (a lexicographic range: no scan).

        Ids whose record is past its retention are dropped from the index on the way, so
        they neither show up here nor make a prefix look ambiguous.
        """
        k = self.keys
        ids: list[str] = await self._call(
            lambda: self.redis.zrangebylex(
                k.ids, f"[{prefix}", f"[{prefix}\xff", start=0, num=limit
            )
        )
        if not ids:
            return []

        async def exists() -> list[int]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lease_id in ids:
                    pipe.exists(k.lease(lease_id))
                return await pipe.execute()

        found: list[int] = await self._call(exists)
        gone = [lease_id for lease_id, there in zip(ids, found, strict=True) if not there]
        if gone:
            await self._call(lambda: self.redis.zrem(k.ids, *gone))
        return [lease_id for lease_id, there in zip(ids, found, strict=True) if there]

    async def active_count(self, owner: str | None = None) -> int:
        key = self.keys.active_owner(owner) if owner else self.keys.active
        return int(await self._call(lambda: self.redis.scard(key)))

    async def budget_used(self, owner: str) -> Decimal:
        raw: str | None = await self._call(
            lambda: self.redis.get(self.keys.budget(owner, utcnow()))
        )
        return Decimal(raw or "0")

    # --- deadlines -------------------------------------------------------------------------

    async def due(self, now: datetime, limit: int = 1000) -> list[str]:
        """Ids whose deadline is at or before ``now``, earliest first."""
        return await self._call(
            lambda: self.redis.zrangebyscore(self.keys.deadlines, "-inf", _ts(now), 0, limit)
        )

    async def next_deadline(self) -> datetime | None:
        first: list[tuple[str, float]] = await self._call(
            lambda: self.redis.zrange(self.keys.deadlines, 0, 0, withscores=True)
        )
        return datetime.fromtimestamp(first[0][1], UTC) if first else None

    async def deadlines_between(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        rows: list[tuple[str, float]] = await self._call(
            lambda: self.redis.zrangebyscore(
                self.keys.deadlines, _ts(start), _ts(end), withscores=True
            )
        )
        return [(lease_id, datetime.fromtimestamp(score, UTC)) for lease_id, score in rows]

    # --- events ----------------------------------------------------------------------------

    async def emit(
        self, event: EventType, lease: Lease | str, owner: str = "", detail: str = ""
    ) -> str:
        lease_id = lease.id if isinstance(lease, Lease) else lease
        owner = lease.owner if isinstance(lease, Lease) else owner

        async def run() -> str:
            async with self.redis.pipeline(transaction=False) as pipe:
                self._xadd(pipe, event, lease_id, owner, detail)
                return str((await pipe.execute())[0])

        return await self._call(run)

    async def last_event_id(self) -> str:
        rows: list[tuple[str, dict[str, str]]] = await self._call(
            lambda: self.redis.xrevrange(self.keys.events, count=1)
        )
        return str(rows[0][0]) if rows else "0-0"

    async def read_events(
        self, after: str = "$", block_ms: int | None = None, count: int = 100
    ) -> list[LeaseEvent]:
        """Events after stream id ``after`` (``"0"``: from the start), waiting ``block_ms``."""
        return (await self.follow_events(after, block_ms, count)).events

    async def follow_events(
        self, after: str = "$", block_ms: int | None = None, count: int = 100
    ) -> EventBatch:
        """Like :meth:`read_events`, with the cursor to pass as ``after`` next time."""
        if block_ms is not None:
            # A block longer than the socket timeout would look like a dead server.
            block_ms = min(block_ms, int(self.settings.redis.socket_timeout * 1000) - 500)
            block_ms = max(block_ms, 1)
        reply: list[tuple[str, list[tuple[str, dict[str, str]]]]] | None = await self._call(
            lambda: self.redis.xread({self.keys.events: after}, count=count, block=block_ms)
        )
        events: list[LeaseEvent] = []
        cursor = after
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                cursor = str(entry_id)
                try:
                    events.append(
                        LeaseEvent(
                            id=entry_id,
                            type=EventType(fields.get("type", "")),
                            lease=fields.get("lease", ""),
                            owner=fields.get("owner", ""),
                            at=datetime.fromisoformat(fields["at"]),
                            detail=fields.get("detail", ""),
                        )
                    )
                except (ValueError, KeyError):
                    continue  # an entry from a newer version: skip it, keep reading
        return EventBatch(events, cursor)

    async def events_for(self, lease_id: str, count: int = 10_000) -> list[LeaseEvent]:
        """Every event of one lease still in the stream, oldest first (for tests and audits)."""
        events = await self.read_events("0", count=count)
        return [e for e in events if e.lease == lease_id]

    # --- reaper coordination ---------------------------------------------------------------

    async def claim(self, lease_id: str, ttl: timedelta) -> str | None:
        """Claim a due lease for one reaper: a random token if won, else None."""
        token = secrets.token_hex(16)
        ok: bool | None = await self._call(
            lambda: self.redis.set(
                self.keys.claim(lease_id), token, nx=True, px=int(ttl.total_seconds() * 1000)
            )
        )
        return token if ok else None

    async def release_claim(self, lease_id: str, token: str) -> bool:
        return bool(
            await self._call(
                lambda: self._release_claim(keys=[self.keys.claim(lease_id)], args=[token])
            )
        )

    async def extend_claim(self, lease_id: str, token: str, ttl: timedelta) -> bool:
        return bool(
            await self._call(
                lambda: self._extend_claim(
                    keys=[self.keys.claim(lease_id)],
                    args=[token, int(ttl.total_seconds() * 1000)],
                )
            )
        )

    async def warn_once(self, lease_id: str, before: timedelta, ttl: timedelta) -> bool:
        """True the first time this warning point is reached for this lease."""
        return bool(
            await self._call(
                lambda: self.redis.set(
                    self.keys.warned(lease_id, before),
                    "1",
                    nx=True,
                    ex=max(1, int(ttl.total_seconds())),
                )
            )
        )

    async def heartbeat(self, beat: ReaperBeat) -> None:
        """Refresh this reaper's key (it expires by itself ``ttl_seconds`` after the last beat)."""
        beat.last_seen = utcnow().isoformat()
        k = self.keys
        ttl_ms = max(1, int(beat.ttl_seconds * 1000))

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(k.reaper(beat.key), json.dumps(asdict(beat)), px=ttl_ms)
                pipe.sadd(k.reapers, beat.key)
                await pipe.execute()

        await self._call(run)

    async def drop_heartbeat(self, beat: ReaperBeat) -> None:
        k = self.keys

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(k.reaper(beat.key))
                pipe.srem(k.reapers, beat.key)
                await pipe.execute()

        await self._call(run)

    async def reapers(self) -> list[ReaperBeat]:
        """Reapers whose heartbeat key has not expired; index entries of dead ones are dropped."""
        k = self.keys
        found: set[str] = await self._call(lambda: self.redis.smembers(k.reapers))
        members = sorted(found)
        if not members:
            return []
        raws: list[str | None] = await self._call(
            lambda: self.redis.mget([k.reaper(member) for member in members])
        )
        alive: list[ReaperBeat] = []
        dead: list[str] = []
        for member, raw in zip(members, raws, strict=True):
            beat = _beat(raw)
            if beat is None:
                dead.append(member)
            else:
                alive.append(beat)
        if dead:
            await self._call(lambda: self.redis.srem(k.reapers, *dead))
        return alive

    # --- provisioning liveness -------------------------------------------------------------

    async def provisioning_start(self, lease_id: str, ttl: timedelta) -> bool:
        """Become the one process provisioning this lease (False: another one is)."""
        ok: bool | None = await self._call(
            lambda: self.redis.set(
                self.keys.provisioning(lease_id),
                f"{socket.gethostname()}:{os.getpid()}",
                nx=True,
                px=max(1, int(ttl.total_seconds() * 1000)),
            )
        )
        return bool(ok)

    async def provisioning_beat(self, lease_id: str, ttl: timedelta) -> None:
        """Still provisioning: keep the key from :meth:`provisioning_start` alive for ``ttl``."""
        await self._call(
            lambda: self.redis.pexpire(
                self.keys.provisioning(lease_id), max(1, int(ttl.total_seconds() * 1000))
            )
        )

    async def provisioning_done(self, lease_id: str) -> None:
        await self._call(lambda: self.redis.delete(self.keys.provisioning(lease_id)))

    async def provisioning_alive(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` some live process is provisioning right now."""
        if not ids:
            return set()
        raws: list[str | None] = await self._call(
            lambda: self.redis.mget([self.keys.provisioning(lease_id) for lease_id in ids])
        )
        return {lease_id for lease_id, raw in zip(ids, raws, strict=True) if raw}

    async def active_ids(self) -> list[str]:
        """Every active lease id (bounded by ``[limits] max_leases_total``)."""
        return sorted(await self._call(lambda: self.redis.smembers(self.keys.active)))


__all__ = [
    "Charge",
    "EventBatch",
    "Keys",
    "LeaseBusy",
    "LeaseNotFound",
    "LeaseStatus",
    "LeaseStore",
    "NameTaken",
    "QuotaExceeded",
    "ReaperBeat",
    "StoreError",
    "StoreUnavailable",
]
