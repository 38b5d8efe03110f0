"""Lease records and their indexes: the insert (one Lua script with its quota checks), reads,
optimistic updates, and the listing indexes.

Indexes follow a record's status: the active sets, the deadline set (left only when the lease
is closed), the record's own expiry (``retention`` after it ends), the owner's name index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from redis.client import NEVER_DECODE
from redis.exceptions import ResponseError
from redis.typing import EncodableT

from containerlease_tui.models import EventType, Lease, utcnow
from containerlease_tui.store import scripts
from containerlease_tui.store.base import StoreBase, run_script
from containerlease_tui.store.budget import Charge, book, charge_key, insert_booking, settle
from containerlease_tui.store.codec import (
    LeaseList,
    decode_lease,
    record_fields,
    text,
    texts,
    ts,
)
from containerlease_tui.store.errors import (
    CorruptRecord,
    LeaseBusy,
    LeaseNotFound,
    NameTaken,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)
from containerlease_tui.store.events import queue_event
from containerlease_tui.store.transaction import optimistic

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

# Records are read undecoded (and decoded by ``codec.decode_lease``): a record that is not UTF-8
# is then one unreadable record, not an exception inside the client that fails a whole batch.
_RAW: dict[str, object] = {NEVER_DECODE: True}


def _record_of(lease_id: str, reply: object) -> Lease | None:
    """The lease in one ``HGET data`` reply (None: no record); :class:`CorruptRecord` when the
    key holds something this version cannot read."""
    if isinstance(reply, ResponseError):
        if str(reply).startswith("WRONGTYPE"):
            raise CorruptRecord(lease_id, "its key is not a hash")
        raise StoreError(f"Redis error: {str(reply).splitlines()[0][:200]}")
    if reply is None or reply in (b"", ""):
        return None
    if not isinstance(reply, bytes | str):
        raise StoreError(f"unexpected reply from Redis: {type(reply).__name__}")
    return decode_lease(reply, lease_id)


def _insert_refusal(
    answer: str, lease: Lease, max_per_user: int, max_total: int, budget_hours: Decimal | None
) -> StoreError:
    """The error for an answer of the insert script other than ``ok``."""
    if answer.startswith("name:"):
        holder = answer.removeprefix("name:")
        return NameTaken(
            f"{lease.owner} already has an active lease named {lease.name!r} ({holder})", holder
        )
    if answer == "exists":
        return StoreError(f"lease id {lease.id} already exists")
    if answer == "user":
        return QuotaExceeded(
            f"quota reached: {lease.owner} already has {max_per_user} active lease"
            f"{'s' if max_per_user != 1 else ''} (the limit)"
        )
    if answer == "total":
        return QuotaExceeded(f"quota reached: the box already has {max_total} active leases")
    if answer == "budget":
        return QuotaExceeded(
            f"daily budget reached: {lease.owner} may book {budget_hours} lease-hours per day"
        )
    return StoreError(f"unexpected answer from the insert script: {answer!r}")


class LeaseRecords(StoreBase):
    """Insert, read, update, re-index and list lease records."""

    def _expire_at(self, lease: Lease) -> int:
        end = lease.ended_at if lease.status.is_terminal and lease.ended_at else lease.expires_at
        return int(ts(max(end, lease.expires_at) + self._retention)) + 1

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
        booking = insert_booking(k, lease)
        keys = [
            k.lease(lease.id),
            k.active,
            k.active_owner(lease.owner),
            k.deadlines,
            k.leases,
            k.owner(lease.owner),
            k.ids,
            booking.key,
            k.events,
            k.names(lease.owner),
        ]
        data = lease.model_dump_json()
        args: list[EncodableT] = [
            lease.id,
            data,
            lease.status.value,
            lease.owner,
            ts(lease.expires_at),
            ts(lease.created_at),
            self._expire_at(lease),
            max_per_user,
            max_total,
            str(budget_hours) if budget_hours is not None else "-1",
            booking.hours,
            booking.expire_at,
            self._maxlen,
            utcnow().isoformat(),
            detail,
            lease.name,
        ]
        try:
            answer = await self._call(run_script, self._insert, keys, args)
        except StoreUnavailable:
            # The script may have run with its reply lost: if the record is ours, it did.
            if await self._inserted(lease.id, data):
                return
            raise
        if answer == "ok":
            return
        if not isinstance(answer, str | bytes):
            raise StoreError(f"unexpected answer from the insert script: {answer!r}")
        if text(answer) == "exists" and await self._inserted(lease.id, data):
            return  # the client resent the script after a lost reply: the first one wrote it
        raise _insert_refusal(text(answer), lease, max_per_user, max_total, budget_hours)

    async def _inserted(self, lease_id: str, data: str) -> bool:
        """Whether the record of ``lease_id`` is exactly the one this insert writes (the
        script is not idempotent, so a lost reply is verified, never blindly retried).
        False when Redis cannot tell."""
        try:
            raw: object = await self._call(
                self.redis.execute_command,
                "HGET",
                self.keys.lease(lease_id),
                "data",
                **_RAW,
            )
        except StoreError:
            return False
        if isinstance(raw, bytes):
            return raw == data.encode()
        return isinstance(raw, str) and raw == data

    async def get(self, lease_id: str) -> Lease | None:
        """The lease (None: no record); :class:`CorruptRecord` for a record this version
        cannot read."""
        key = self.keys.lease(lease_id)

        async def run() -> object:
            try:
                reply: object = await self.redis.execute_command(  # type: ignore[no-untyped-call]
                    "HGET", key, "data", **_RAW
                )
            except ResponseError as exc:
                if not str(exc).startswith("WRONGTYPE"):
                    raise
                reply = exc
            return reply

        return _record_of(lease_id, await self._call(run))

    async def get_many(self, ids: Iterable[str]) -> LeaseList:
        """The leases of ``ids`` that are on record, in that order; records this version cannot
        read are left out and listed in the result's ``skipped``."""
        id_list = list(ids)
        if not id_list:
            return LeaseList()

        async def run() -> list[object]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lease_id in id_list:
                    pipe.execute_command("HGET", self.keys.lease(lease_id), "data", **_RAW)
                replies: list[object] = await pipe.execute(raise_on_error=False)
                return replies

        found = LeaseList()
        for lease_id, reply in zip(id_list, await self._call(run), strict=True):
            try:
                lease = _record_of(lease_id, reply)
            except CorruptRecord as bad:
                found.skipped.append(bad)
                continue
            if lease is not None:
                found.append(lease)
        return found

    async def _read_watched(self, pipe: Pipeline, lease_id: str) -> Lease:
        """The record as it is now, read on ``pipe`` after WATCH (immediate mode)."""
        try:
            reply: object = await pipe.execute_command(
                "HGET", self.keys.lease(lease_id), "data", **_RAW
            )
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            reply = exc
        lease = _record_of(lease_id, reply)
        if lease is None:
            raise LeaseNotFound(f"no lease {lease_id}")
        return lease

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
        so a change cannot slip in between a reaper's decision and its removal. A record that
        keeps changing under every attempt (see ``transaction.MAX_WATCH_CONFLICTS``) raises
        :class:`LeaseContended` (a :class:`LeaseBusy`), with nothing written.
        """
        k = self.keys

        async def attempt(pipe: Pipeline) -> Lease:
            budget_key = charge_key(k, charge) if charge else None
            watched = [k.lease(lease_id)]
            if budget_key:
                watched.append(budget_key)
            if unclaimed:
                watched.append(k.claim(lease_id))
            await pipe.watch(*watched)
            if unclaimed and await pipe.exists(k.claim(lease_id)):
                raise LeaseBusy(f"lease {lease_id} is being removed by a reaper")
            new = mutate(await self._read_watched(pipe, lease_id))
            hours = await settle(pipe, budget_key, charge) if charge and budget_key else None
            pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            self._write(pipe, new, event, detail)
            for extra, extra_detail in also:
                queue_event(pipe, k.events, self._maxlen, extra, new.id, new.owner, extra_detail)
            if budget_key and hours is not None:
                book(pipe, budget_key, hours)
            await pipe.execute()
            return new

        return await self._call(optimistic, self.redis, attempt, what=f"lease {lease_id}")

    async def reindex(self, lease_id: str) -> Lease:
        """Re-add a lease's index entries from its record as it stands: the deadline (unless it
        is closed), the active sets, the record's expiry, and the listing indexes (``ls``, id
        prefixes) where missing. For a record found overdue but absent from the deadline set
        (the reaper's sweep): afterwards the deadline path reaps it. Changes no record and
        writes no event; raises :class:`LeaseNotFound` when there is no record."""

        async def attempt(pipe: Pipeline) -> Lease:
            await pipe.watch(self.keys.lease(lease_id))
            lease = await self._read_watched(pipe, lease_id)
            pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            self._write_indexes(pipe, lease)
            k = self.keys
            created = ts(lease.created_at)
            pipe.zadd(k.leases, {lease.id: created}, nx=True)
            pipe.zadd(k.owner(lease.owner), {lease.id: created}, nx=True)
            pipe.zadd(k.ids, {lease.id: 0}, nx=True)
            await pipe.execute()
            return lease

        return await self._call(optimistic, self.redis, attempt, what=f"lease {lease_id}")

    def _write(self, pipe: Pipeline, lease: Lease, event: EventType | None, detail: str) -> None:
        """Queue the record, its indexes and ``event`` (if any) on ``pipe`` (after MULTI)."""
        pipe.hset(self.keys.lease(lease.id), mapping=record_fields(lease))
        self._write_indexes(pipe, lease)
        if event is not None:
            queue_event(pipe, self.keys.events, self._maxlen, event, lease.id, lease.owner, detail)

    def _write_indexes(self, pipe: Pipeline, lease: Lease) -> None:
        """Queue what follows the record's status: its expiry, the active sets, the owner's name
        index and the deadline set."""
        k = self.keys
        pipe.expireat(k.lease(lease.id), self._expire_at(lease))
        if lease.status.is_active:
            pipe.sadd(k.active, lease.id)
            pipe.sadd(k.active_owner(lease.owner), lease.id)
        else:
            pipe.srem(k.active, lease.id)
            pipe.srem(k.active_owner(lease.owner), lease.id)
            pipe.eval(scripts.FREE_NAME, 1, k.names(lease.owner), lease.name, lease.id)
        if lease.status.is_terminal:
            pipe.zrem(k.deadlines, lease.id)
        else:
            pipe.zadd(k.deadlines, {lease.id: ts(lease.expires_at)})

    # --- listing ---------------------------------------------------------------------------

    async def _list(self, index: str, limit: int | None) -> LeaseList:
        end = -1 if limit is None else limit - 1
        ids = texts(await self._call(self.redis.zrevrange, index, 0, end))
        leases = await self.get_many(ids)
        found = {lease.id for lease in leases} | leases.skipped_ids
        gone = [lease_id for lease_id in ids if lease_id not in found]
        if gone:  # records past their retention: drop them from the index too
            await self._call(self.redis.zrem, index, *gone)
        return leases

    async def list_owner(self, owner: str, limit: int | None = None) -> LeaseList:
        """One owner's leases, newest first; reads only that owner's index. Unreadable
        records are in the result's ``skipped``."""
        return await self._list(self.keys.owner(owner), limit)

    async def list_all(self, limit: int | None = None) -> LeaseList:
        """Every lease still on record, newest first (unreadable ones in ``skipped``)."""
        return await self._list(self.keys.leases, limit)

    async def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of leases on record starting with ``prefix`` (a lexicographic range: no scan).

        Ids whose record is past its retention are dropped from the index on the way, so
        they neither show up here nor make a prefix look ambiguous.
        """
        k = self.keys
        ids = texts(
            await self._call(
                lambda: self.redis.zrangebylex(
                    k.ids, f"[{prefix}", f"[{prefix}\xff", start=0, num=limit
                )
            )
        )
        if not ids:
            return []

        async def exists() -> list[object]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lease_id in ids:
                    pipe.exists(k.lease(lease_id))
                replies: list[object] = await pipe.execute()
                return replies

        found = await self._call(exists)
        gone = [lease_id for lease_id, there in zip(ids, found, strict=True) if not there]
        if gone:
            await self._call(self.redis.zrem, k.ids, *gone)
        return [lease_id for lease_id, there in zip(ids, found, strict=True) if there]

    async def active_ids(self) -> list[str]:
        """Every active lease id (bounded by ``[limits] max_leases_total``)."""
        return sorted(texts(await self._call(self.redis.smembers, self.keys.active)))
