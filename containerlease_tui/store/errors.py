"""The store's errors, phrased for a user, and the one mapping from redis-py's exceptions."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from containerlease_tui.config import redact_url


class StoreError(Exception):
    """A problem with the lease store, phrased for a user."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""


class StoreRefused(StoreError):
    """Redis answers but refuses writes (``maxmemory`` with ``noeviction``, a read-only replica,
    a failed snapshot): reads still work, so the reaper can still remove what is due."""


class QuotaExceeded(StoreError):
    """The insert would break a quota; nothing was written."""


class LeaseNotFound(StoreError):
    """No record for that lease id (never existed, or its retention has passed)."""


class NameTaken(StoreError):
    """The owner already has an active lease of that name; nothing was written."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class CorruptRecord(StoreError):
    """A lease record this version cannot read: not JSON, not a hash, not UTF-8, or written by
    a newer version (an unknown status, a missing field). Readers skip it and report it; the
    reaper postpones it instead of failing on it."""

    def __init__(self, lease_id: str, reason: str) -> None:
        super().__init__(f"lease {lease_id} is unreadable: {reason}")
        self.lease_id = lease_id
        self.reason = reason


class LeaseBusy(StoreError):
    """The lease cannot be changed right now: a reaper holds a claim on it (it is being
    removed), or it kept changing under every attempt of an optimistic update."""


class LeaseContended(LeaseBusy):
    """The lease's record (or another watched key) changed under every attempt of an
    optimistic update (``transaction.MAX_WATCH_CONFLICTS``); nothing was written."""


def short(exc: BaseException) -> str:
    """The first line of an exception's text (at most 200 characters), or its type's name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def unreachable(url: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"Redis at {redact_url(url)} is unreachable: {short(exc)}")


def map_redis_error(exc: RedisError, url: str) -> StoreError:
    """The store's error for one of redis-py's (``url`` is redacted before it is shown)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return unreachable(url, exc)
    text = short(exc)
    if isinstance(exc, ReadOnlyError | OutOfMemoryError):
        return StoreRefused(f"Redis refuses writes: {text}")
    if text.lstrip("-").split(" ", 1)[0] in _REFUSALS or "OOM command not allowed" in text:
        return StoreRefused(f"Redis refuses writes: {text}")
    return StoreError(f"Redis error: {text}")


# Error codes of a Redis that answers but will not write (reads still work).
_REFUSALS = frozenset({"OOM", "READONLY", "MISCONF", "NOREPLICAS"})
