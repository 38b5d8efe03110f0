"""What the store writes to Redis and how it reads back what Redis answers.

A lease record is a hash: ``data`` (the :class:`Lease` as JSON) and ``status``; an event is a
stream entry of five string fields. redis-py types its replies loosely (``bytes | str``, unions
of RESP2 and RESP3 shapes, whatever ``decode_responses`` says): the ``text``/``texts``/
``scored``/``stream_entries`` functions narrow a reply to the shape this decoding client really
gets, so nothing typed ``Any`` travels further than the line that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from redis.typing import EncodableT

from containerlease_tui.models import EventType, Lease, LeaseEvent
from containerlease_tui.store.errors import StoreError

MAX_EVENT_DETAIL = 500
"""Characters of an event's ``detail`` kept in the stream."""

Fields = dict[EncodableT, EncodableT]
"""Hash or stream-entry fields, typed as redis-py takes them (its mappings are invariant)."""


def ts(value: datetime) -> float:
    """A moment as a sorted-set score (epoch seconds)."""
    return value.timestamp()


def from_ts(score: float) -> datetime:
    return datetime.fromtimestamp(score, UTC)


# --- lease records ---------------------------------------------------------------------------


def record_fields(lease: Lease) -> Fields:
    """The hash fields an update writes (the insert script also writes ``owner``)."""
    return {"data": lease.model_dump_json(), "status": lease.status.value}


def decode_lease(raw: str) -> Lease:
    return Lease.model_validate_json(raw)


# --- events ----------------------------------------------------------------------------------


def event_fields(event: EventType, lease_id: str, owner: str, detail: str, at: datetime) -> Fields:
    return {
        "type": event.value,
        "lease": lease_id,
        "owner": owner,
        "at": at.isoformat(),
        "detail": detail[:MAX_EVENT_DETAIL],
    }


def decode_event(entry_id: str, fields: Mapping[str, str]) -> LeaseEvent | None:
    """The event of one stream entry; None for an entry this version cannot read (one written
    by a newer version), which readers step over."""
    try:
        return LeaseEvent(
            id=entry_id,
            type=EventType(fields.get("type", "")),
            lease=fields.get("lease", ""),
            owner=fields.get("owner", ""),
            at=datetime.fromisoformat(fields["at"]),
            detail=fields.get("detail", ""),
        )
    except (ValueError, KeyError):
        return None


# --- replies ---------------------------------------------------------------------------------


def text(value: object) -> str:
    """A string reply (the client decodes, so ``bytes`` only if someone configured it not to)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    raise StoreError(f"unexpected reply from Redis: {type(value).__name__}")


def optional_text(value: object) -> str | None:
    return None if value is None else text(value)


def texts(values: Iterable[object]) -> list[str]:
    return [text(value) for value in values]


def scored(rows: Iterable[object]) -> list[tuple[str, float]]:
    """``(member, score)`` pairs of a sorted-set read ``withscores``."""
    pairs: list[tuple[str, float]] = []
    for row in rows:
        if not isinstance(row, Sequence) or len(row) != 2:
            raise StoreError(f"unexpected sorted-set reply from Redis: {row!r:.80}")
        member, score = row
        if not isinstance(score, int | float | str | bytes):
            raise StoreError(f"unexpected sorted-set score from Redis: {score!r:.80}")
        pairs.append((text(member), float(score)))
    return pairs


def stream_entries(entries: Iterable[object]) -> list[tuple[str, dict[str, str]]]:
    """``(entry id, fields)`` of an XRANGE/XREVRANGE reply or of one stream in an XREAD reply."""
    found: list[tuple[str, dict[str, str]]] = []
    for entry in entries:
        if not isinstance(entry, Sequence) or len(entry) != 2:
            raise StoreError(f"unexpected stream reply from Redis: {entry!r:.80}")
        entry_id, fields = entry
        pairs = fields.items() if isinstance(fields, Mapping) else ()
        found.append((text(entry_id), {text(k): text(v) for k, v in pairs}))
    return found


def xread_entries(reply: object) -> list[tuple[str, dict[str, str]]]:
    """Every entry of an XREAD reply over any number of streams (RESP2 list or RESP3 map)."""
    if reply is None:
        return []
    streams: list[object] = []
    if isinstance(reply, Mapping):
        streams.extend(reply.values())
    elif isinstance(reply, Sequence):
        for item in reply:
            if not isinstance(item, Sequence) or len(item) != 2:
                raise StoreError(f"unexpected XREAD reply from Redis: {item!r:.80}")
            streams.append(item[1])
    else:
        raise StoreError(f"unexpected XREAD reply from Redis: {type(reply).__name__}")
    found: list[tuple[str, dict[str, str]]] = []
    for entries in streams:
        if not isinstance(entries, Iterable):
            raise StoreError(f"unexpected XREAD reply from Redis: {entries!r:.80}")
        found.extend(stream_entries(entries))
    return found
