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

from pydantic import ValidationError
from redis.typing import EncodableT

from containerlease_tui.models import EventType, Lease, LeaseEvent
from containerlease_tui.sanitize import one_line
from containerlease_tui.store.errors import CorruptRecord, StoreError

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


class LeaseList(list[Lease]):
    """Leases read from the store, and the records among the ids asked for that could not be
    read (:attr:`skipped`, each a :class:`CorruptRecord`): one bad record never hides the
    others."""

    def __init__(self, leases: Iterable[Lease] = (), skipped: Iterable[CorruptRecord] = ()) -> None:
        super().__init__(leases)
        self.skipped: list[CorruptRecord] = list(skipped)

    @property
    def skipped_ids(self) -> set[str]:
        return {bad.lease_id for bad in self.skipped}


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else None
    if first is None:
        return "invalid record"
    where = ".".join(str(part) for part in first.get("loc", ())) or "record"
    more = exc.error_count() - 1
    return f"{where}: {first.get('msg', 'invalid')}" + (f" (and {more} more)" if more else "")


def decode_lease(raw: str | bytes, lease_id: str) -> Lease:
    """The :class:`Lease` of record ``lease_id``'s ``data``; :class:`CorruptRecord` (with one
    short, terminal-safe line saying why) when this version cannot read it."""
    try:
        text_ = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise CorruptRecord(lease_id, "not UTF-8 text") from None
    try:
        lease = Lease.model_validate_json(text_)
    except ValidationError as exc:
        raise CorruptRecord(lease_id, one_line(_reason(exc), 160)) from None
    except ValueError as exc:  # pragma: no cover - pydantic wraps JSON errors itself
        raise CorruptRecord(lease_id, one_line(str(exc), 160)) from None
    if lease.id != lease_id:
        raise CorruptRecord(lease_id, one_line(f"its data names another lease ({lease.id})", 160))
    return lease


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


def _fields(fields: object) -> dict[str, str] | None:
    """An entry's fields as text; None when one is not UTF-8 (the entry cannot be read)."""
    pairs = fields.items() if isinstance(fields, Mapping) else ()
    try:
        return {text(k): text(v) for k, v in pairs}
    except UnicodeDecodeError:
        return None


def raw_stream_entries(entries: Iterable[object]) -> list[tuple[str, dict[str, str] | None]]:
    """``(entry id, fields)`` of an undecoded XRANGE/XREVRANGE reply or of one stream in an
    XREAD reply; ``fields`` is None for an entry that is not UTF-8 text."""
    found: list[tuple[str, dict[str, str] | None]] = []
    for entry in entries:
        if not isinstance(entry, Sequence) or len(entry) != 2:
            raise StoreError(f"unexpected stream reply from Redis: {entry!r:.80}")
        entry_id, fields = entry
        found.append((text(entry_id), _fields(fields)))
    return found


def stream_entries(entries: Iterable[object]) -> list[tuple[str, dict[str, str]]]:
    """``(entry id, fields)`` of an XRANGE/XREVRANGE reply or of one stream in an XREAD reply."""
    found: list[tuple[str, dict[str, str]]] = []
    for entry_id, fields in raw_stream_entries(entries):
        if fields is None:
            raise StoreError(f"stream entry {entry_id} is not UTF-8 text")
        found.append((entry_id, fields))
    return found


def xread_entries(reply: object) -> list[tuple[str, dict[str, str] | None]]:
    """Every entry of an XREAD reply over any number of streams (RESP2 list or RESP3 map);
    an entry's fields are None when they are not UTF-8 text."""
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
    found: list[tuple[str, dict[str, str] | None]] = []
    for entries in streams:
        if not isinstance(entries, Iterable):
            raise StoreError(f"unexpected XREAD reply from Redis: {entries!r:.80}")
        found.extend(raw_stream_entries(entries))
    return found
