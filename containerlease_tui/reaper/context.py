"""What every job of the reaper shares: its settings and connections, the stop flag, the
derived timeouts, and the :class:`PassResult` each pass fills in."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from containerlease_tui.config import Settings
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.store import CorruptRecord
from containerlease_tui.store.protocol import Store


@dataclass
class PassResult:
    """What one pass did (with ``dry_run``: what it would have done)."""

    due: int = 0
    """Due leases the pass looked at."""
    reaped: int = 0
    """Leases closed as expired with their container removed."""
    failed: int = 0
    """Leases whose removal failed (marked failed and postponed) or that hit an error."""
    skipped: int = 0
    """Due leases left alone: claimed by another reaper, extended, closed meanwhile, stopping."""
    swept: int = 0
    """Containers removed (or records closed) by the reconciliation sweep."""
    warned: int = 0
    """Expiry warnings sent."""
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "due": self.due,
            "reaped": self.reaped,
            "failed": self.failed,
            "skipped": self.skipped,
            "swept": self.swept,
            "warned": self.warned,
        }


class Changed(Exception):
    """The record changed under us (read, then re-checked inside the update): leave it alone."""


class ReaperContext:
    """One reaper's settings, connections, log and stop flag, handed to each of its jobs.

    Building it touches neither Redis nor Docker (a reaper is made before either is reached).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Runtime,
        *,
        dry_run: bool,
        log: logging.Logger,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.dry_run = dry_run
        self.log = log
        cfg = settings.reaper
        self.prefix = settings.redis.key_prefix
        self.lock_ttl = cfg.lock_ttl
        self.interval = cfg.interval
        # One attempt: the delete (docker timeout), waiting out a removal already in progress
        # (about 10 s) and the inspects of that wait.
        self.removal_timeout = 2 * settings.docker.timeout + 15.0
        # Backstops, so nothing — a hung engine, a Redis that never answers — can wedge the
        # loop or keep a stop waiting forever: a whole tick, and all the work on one lease.
        redis_call = 3 * (settings.redis.socket_timeout + 3.0)  # a command with its retries
        self.tick_timeout = max(30.0, 4 * redis_call)
        max_backoff = sum(
            cfg.backoff.total_seconds() * 1.5 * 2**i for i in range(max(cfg.retries - 1, 0))
        )
        self.lease_timeout = cfg.retries * self.removal_timeout + max_backoff + 6 * redis_call
        self.stop: asyncio.Event | None = None  # set by run() / run_once()
        # Reaping found the Docker engine unreachable: passes wait for it (see the loop).
        self.engine_down = False
        self.unreadable: set[str] = set()  # ids of unreadable records already logged

    def note_unreadable(self, bad: CorruptRecord) -> None:
        """Log an unreadable record once per reaper (at debug level afterwards)."""
        first = bad.lease_id not in self.unreadable
        self.unreadable.add(bad.lease_id)
        self.log.log(
            logging.WARNING if first else logging.DEBUG,
            "unreadable lease record skipped",
            extra={"action": "unreadable", "lease": bad.lease_id, "error": bad.reason},
        )

    def readable(self, lease_id: str) -> None:
        """A record read fine (again): a later corruption of it is logged anew."""
        self.unreadable.discard(lease_id)

    def stopping(self) -> bool:
        """Whether a stop was asked for: start nothing new."""
        return self.stop is not None and self.stop.is_set()
