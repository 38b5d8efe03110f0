"""The one backoff: exponential growth from a base, a cap, and jitter, so retries of many
clients (reapers, app workers) never move in lockstep.

Every retry loop in the package uses :func:`backoff_delay` (directly or through
:class:`Backoff`); only the base, cap and jitter differ by caller.
"""

from __future__ import annotations

import math
import random

MAX_DOUBLINGS = 16
"""Past 2^16 the cap has long taken over; bounding the exponent keeps the float finite."""


def backoff_delay(
    attempt: int,
    base: float,
    cap: float = math.inf,
    *,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``min(cap, base·2^attempt)``, then
    scaled by a random factor in ``[1 - jitter, 1 + jitter]``."""
    doublings = min(max(attempt, 0), MAX_DOUBLINGS)
    delay = min(cap, base * float(2**doublings))
    factor: float = (rng or random).uniform(1.0 - jitter, 1.0 + jitter)
    return delay * factor


class Backoff:
    """Stateful :func:`backoff_delay` for a retry loop: ``next()`` after each failure,
    ``reset()`` after a success."""

    def __init__(self, base: float = 0.5, cap: float = 15.0, *, jitter: float = 0.2) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        delay = backoff_delay(self.attempt, self.base, self.cap, jitter=self.jitter)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start over after a success."""
        self.attempt = 0
