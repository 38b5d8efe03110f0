"""The reaper's clock: its tuning constants and the pure delay arithmetic (no I/O)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from containerlease_tui.backoff import backoff_delay

# Seconds between heartbeats (at most; a shorter poll interval shortens it); entries older than
# HEARTBEAT_TTL_FACTOR periods count as dead.
HEARTBEAT_PERIOD: Final = 5.0
HEARTBEAT_TTL_FACTOR: Final = 3
# The in-app reaper's period: its beat (3 periods) is gone 3 s after its app died.
IN_APP_HEARTBEAT_PERIOD: Final = 1.0
# Due leases read per pass; a full batch is followed at once by another pass.
DUE_BATCH: Final = 1000
# While a due lease is being handled (here or by another reaper), poll at most this often.
OVERDUE_POLL: Final = 0.5
# Added to every sleep that targets a deadline: waking a hair late makes it due for sure.
WAKE_SLACK: Final = 0.005
# A lease failing again and again is retried after at most this long.
MAX_POSTPONE: Final = timedelta(minutes=5)
# While Redis or Docker is unreachable, ask it (PING) this often: the pass that failed runs
# again as soon as it answers, whatever the backoff had grown to.
PROBE_PERIOD: Final = 0.2
# Longest wait for one such probe.
PROBE_TIMEOUT: Final = 2.0
# Seconds between two checks for provisions whose process died (besides every sweep).
STALLED_CHECK: Final = 5.0
# The event follower's longest backoff while Redis is away.
FOLLOW_BACKOFF_CAP: Final = 1.0
# Longest wait for best-effort cleanup calls (releasing claims, dropping the heartbeat).
CLEANUP_TIMEOUT: Final = 3.0


def retry_delay(attempt: int, base: timedelta, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (0-based): ``base·2^attempt`` with ±50 % jitter."""
    return backoff_delay(attempt, base.total_seconds(), jitter=0.5, rng=rng)


def postpone_delay(
    failures: int, interval: timedelta, rng: random.Random | None = None
) -> timedelta:
    """How long a lease that failed ``failures`` passes in a row waits before the next try.

    The poll interval, doubled per further failure, capped at :data:`MAX_POSTPONE` (or the
    interval if that is longer), with ±20 % jitter so failing leases do not move in lockstep.
    """
    cap = max(interval, MAX_POSTPONE).total_seconds()
    return timedelta(seconds=backoff_delay(failures - 1, interval.total_seconds(), cap, rng=rng))


def error_backoff(errors: int, base: timedelta, interval: timedelta) -> float:
    """Seconds to wait after ``errors`` failed passes in a row (Redis or Docker unreachable)."""
    start = max(base.total_seconds(), 0.2)
    return backoff_delay(errors - 1, start, interval.total_seconds())


def wake_delay(
    now: datetime, moments: Iterable[datetime | None], interval: float, overdue: float
) -> float:
    """Seconds to sleep: until the earliest of ``moments``, at most ``interval``.

    A moment already past means something due could not be handled yet (another reaper holds
    it, or it is in flight): poll again after ``overdue`` seconds rather than spin.
    """
    delay = interval
    for moment in moments:
        if moment is None:
            continue
        seconds = (moment - now).total_seconds()
        delay = min(delay, overdue if seconds <= 0 else seconds + WAKE_SLACK)
    return max(0.0, delay)
