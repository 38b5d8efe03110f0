"""The event stream (``Keys.events``): a capped stream every change writes to, read by cursor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.client import NEVER_DECODE

from containerlease_tui.models import EventType, Lease, LeaseEvent, utcnow
from containerlease_tui.store.base import StoreBase
from containerlease_tui.store.codec import (
    decode_event,
    event_fields,
    raw_stream_entries,
    text,
    xread_entries,
)

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline


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
    pipe.xadd(
        stream,
        event_fields(event, lease_id, owner, detail, utcnow()),
        maxlen=maxlen,
        approximate=True,
    )


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
        rows = await self._call(
            self.redis.execute_command,
            "XREVRANGE",
            self.keys.events,
            "+",
            "-",
            "COUNT",
            1,
            **{NEVER_DECODE: True},
        )
        entries = raw_stream_entries(rows or [])  # the id only: the fields may be unreadable
        return entries[0][0] if entries else "0-0"

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
        # Read undecoded: an entry that is not UTF-8 is one skipped entry, not an exception in
        # the client that would stop every follower at it.
        reply = await self._call(
            self.redis.execute_command,
            "XREAD",
            *args,
            "STREAMS",
            self.keys.events,
            after,
            **{NEVER_DECODE: True},
        )
        events: list[LeaseEvent] = []
        skipped: list[str] = []
        cursor = after
        for entry_id, fields in xread_entries(reply):
            cursor = entry_id
            event = decode_event(entry_id, fields) if fields is not None else None
            if event is None:  # not UTF-8, or from a newer version: skip it, keep reading
                skipped.append(entry_id)
            else:
                events.append(event)
        return EventBatch(events, cursor, skipped)
