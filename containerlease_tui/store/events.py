"""The event stream (``Keys.events``): a capped stream every change writes to, read by cursor."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from redis.client import NEVER_DECODE

from containerlease_tui.models import OWNER_PATTERN, EventType, Lease, LeaseEvent, utcnow
from containerlease_tui.store.base import StoreBase
from containerlease_tui.store.codec import (
    decode_event,
    event_fields,
    from_ts,
    raw_stream_entries,
    text,
    xread_entries,
)

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline


REAPER_ACTOR: Final = "reaper"
"""The actor of what a reaper does (expiry warnings, reaps, the sweep's verdicts)."""
REAPER_EVENTS: Final = frozenset({EventType.EXPIRING, EventType.EXPIRED, EventType.REAPED})
"""Events only a reaper writes: read as its doing when an entry names no actor."""

ACTOR: ContextVar[str] = ContextVar("containerlease_actor", default="")
"""Who the events written now are by (``acting_as``); empty: the lease's owner."""


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Every event written inside (by this task) names ``actor`` as who did it."""
    token = ACTOR.set(actor)
    try:
        yield
    finally:
        ACTOR.reset(token)


def read_event(entry_id: str, fields: Mapping[str, str]) -> LeaseEvent | None:
    """The event of one stream entry with its actor (see :func:`acting_as`); None for an
    entry this version cannot read. An actor that is not a valid account name is dropped."""
    event = decode_event(entry_id, fields)
    if event is None:
        return None
    actor = fields.get("actor", "")
    if not OWNER_PATTERN.fullmatch(actor):
        actor = REAPER_ACTOR if event.type in REAPER_EVENTS else event.owner
    return event.model_copy(update={"actor": actor})


@dataclass(frozen=True)
class EventHistory:
    """The stream as it stands, newest last: what ``containerlease events`` prints.

    ``cursor`` is the newest entry's id (follow from there); ``oldest`` is when the oldest entry
    the stream still holds was written: the stream is capped (``[redis] stream_maxlen``), so
    anything before that is gone. ``length`` is how many entries it holds.
    """

    events: list[LeaseEvent]
    cursor: str
    oldest: datetime | None
    length: int
    maxlen: int

    @property
    def trimmed(self) -> bool:
        """The cap has (very probably) dropped older entries (trimming is approximate)."""
        return self.length >= self.maxlen


def since_id(since: datetime) -> str:
    """The smallest stream id at or after ``since``."""
    return f"{max(0, int(since.timestamp() * 1000))}-0"


@dataclass(frozen=True)
class EventBatch:
    """What one read of the event stream returned, and where the next read starts.

    ``cursor`` is the id of the last entry read, parsable or not, so an entry this version
    cannot read is stepped over instead of being returned again and again; ``skipped`` lists
    those entries' ids (not UTF-8, or written by a newer version), each reported once since the
    cursor moves past it.
    """

    events: list[LeaseEvent]
    cursor: str
    skipped: list[str] = field(default_factory=list)


def queue_event(
    pipe: Pipeline,
    stream: str,
    maxlen: int,
    event: EventType,
    lease_id: str,
    owner: str,
    detail: str,
) -> None:
    """Queue one event on ``pipe`` (in the transaction of the change it reports, if any)."""
    fields = event_fields(event, lease_id, owner, detail, utcnow())
    actor = ACTOR.get()
    if actor:
        fields["actor"] = actor
    pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)


class EventStream(StoreBase):
    """Writing single events and following the stream."""

    async def emit(
        self, event: EventType, lease: Lease | str, owner: str = "", detail: str = ""
    ) -> str:
        """Write one event (about ``lease``, or a lease id and its ``owner``); its stream id."""
        lease_id = lease.id if isinstance(lease, Lease) else lease
        owner = lease.owner if isinstance(lease, Lease) else owner

        async def run() -> str:
            async with self.redis.pipeline(transaction=False) as pipe:
                queue_event(pipe, self.keys.events, self._maxlen, event, lease_id, owner, detail)
                replies: list[object] = await pipe.execute()
                return text(replies[0])

        return await self._call(run)

    async def last_event_id(self) -> str:
        """The id of the newest entry (``"0-0"`` for an empty stream): a cursor that reads only
        what comes after it."""
        rows = await self._call(self._raw, "XREVRANGE", self.keys.events, "+", "-", "COUNT", 1)
        entries = raw_stream_entries(_rows(rows))  # the id only: the fields may be unreadable
        return entries[0][0] if entries else "0-0"

    async def _raw(self, *args: object) -> object:
        # Undecoded: an entry that is not UTF-8 is one skipped entry, not an exception in the
        # client that would stop every reader at it.
        reply: object = await self.redis.execute_command(  # type: ignore[no-untyped-call]
            *args, **{NEVER_DECODE: True}
        )
        return reply

    async def follow_events(
        self, after: str = "$", block_ms: int | None = None, count: int = 100
    ) -> EventBatch:
        """Events after stream id ``after`` (``"0"``: from the start), waiting up to
        ``block_ms``, with the cursor to pass as ``after`` next time."""
        if block_ms is not None:
            # A block longer than the socket timeout would look like a dead server.
            block_ms = min(block_ms, int(self.settings.redis.socket_timeout * 1000) - 500)
            block_ms = max(block_ms, 1)
        args: list[object] = ["COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        reply = await self._call(self._raw, "XREAD", *args, "STREAMS", self.keys.events, after)
        events: list[LeaseEvent] = []
        skipped: list[str] = []
        cursor = after
        for entry_id, fields in xread_entries(reply):
            cursor = entry_id
            event = read_event(entry_id, fields) if fields is not None else None
            if event is None:  # not UTF-8, or from a newer version: skip it, keep reading
                skipped.append(entry_id)
            else:
                events.append(event)
        return EventBatch(events, cursor, skipped)

    async def event_history(self, since: datetime | None = None, limit: int = 1000) -> EventHistory:
        """Up to ``limit`` of the newest events (at or after ``since``), oldest first."""

        async def run() -> tuple[object, object, object, object]:
            async with self.redis.pipeline(transaction=True) as pipe:
                start = since_id(since) if since else "-"
                pipe.execute_command(
                    "XREVRANGE",
                    self.keys.events,
                    "+",
                    start,
                    "COUNT",
                    limit,
                    **{NEVER_DECODE: True},
                )
                pipe.execute_command(
                    "XRANGE", self.keys.events, "-", "+", "COUNT", 1, **{NEVER_DECODE: True}
                )
                pipe.execute_command(
                    "XREVRANGE", self.keys.events, "+", "-", "COUNT", 1, **{NEVER_DECODE: True}
                )
                pipe.xlen(self.keys.events)
                newest_first, oldest, newest, length = await pipe.execute()
                return newest_first, oldest, newest, length

        rows, oldest_rows, newest_rows, length = await self._call(run)
        events = [
            event
            for entry_id, fields in reversed(raw_stream_entries(_rows(rows)))
            if fields is not None and (event := read_event(entry_id, fields)) is not None
        ]
        oldest = raw_stream_entries(_rows(oldest_rows))
        newest = raw_stream_entries(_rows(newest_rows))
        return EventHistory(
            events=events,
            cursor=newest[0][0] if newest else "0-0",
            oldest=from_ts(int(oldest[0][0].split("-")[0]) / 1000) if oldest else None,
            length=length if isinstance(length, int) else 0,
            maxlen=self._maxlen,
        )


def _rows(reply: object) -> list[object]:
    return list(reply) if isinstance(reply, list | tuple) else []
