"""The reaper's heartbeat: its entry in ``P:reapers`` and the counts it carries."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from containerlease_tui import __version__
from containerlease_tui.reaper.context import PassResult, ReaperContext
from containerlease_tui.reaper.timing import (
    CLEANUP_TIMEOUT,
    HEARTBEAT_PERIOD,
    HEARTBEAT_TTL_FACTOR,
    IN_APP_HEARTBEAT_PERIOD,
)
from containerlease_tui.store import ReaperBeat, StoreError


class Heartbeat:
    """This reaper's :class:`ReaperBeat`, refreshed every few seconds while it runs.

    The beat's counters move with the pass's: :meth:`reaped` and :meth:`failed` count both.
    """

    def __init__(self, ctx: ReaperContext, mode: str) -> None:
        self._ctx = ctx
        self.period = max(1.0, min(HEARTBEAT_PERIOD, ctx.interval.total_seconds()))
        if mode == "in-app":
            # An app dies with its terminal: its beat must vanish within seconds, so the status
            # bar, `doctor` and the guardian never count a reaper that is gone.
            self.period = IN_APP_HEARTBEAT_PERIOD
        self.beat = ReaperBeat(
            version=__version__, mode=mode, ttl_seconds=HEARTBEAT_TTL_FACTOR * self.period
        )
        self._on = False  # a beat was written: drop it when the run ends
        self._passed = asyncio.Event()  # set after the first pass of run()

    def reset(self) -> None:
        """A new run: its first beat waits for its own first pass."""
        self._passed = asyncio.Event()

    def passed(self, now: datetime) -> None:
        """A pass (or tick) finished at ``now``."""
        self.beat.passes += 1
        self.beat.last_pass = now.isoformat()
        self._passed.set()

    def reaped(self, result: PassResult, *, swept: bool = False) -> None:
        """A container removed: counted in the pass (as reaped, or swept) and in the beat."""
        if swept:
            result.swept += 1
        else:
            result.reaped += 1
        self.beat.reaped += 1

    def failed(self, result: PassResult) -> None:
        """A lease that could not be handled: counted in the pass and in the beat."""
        result.failed += 1
        self.beat.failed += 1

    async def run(self) -> None:
        """Write the beat every period until cancelled (Redis trouble only skips a beat)."""
        # The first beat waits (briefly) for the first pass, so it already says when that was.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.period):
                await self._passed.wait()
        while True:
            try:
                await self._ctx.store.heartbeat(self.beat)
                self._on = True
            except StoreError as exc:
                self._ctx.log.debug(
                    "heartbeat failed", extra={"action": "heartbeat", "error": str(exc)}
                )
            await asyncio.sleep(self.period)

    async def drop(self) -> None:
        """Remove the beat (best effort: it expires by itself after its TTL)."""
        if not self._on:
            return
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await self._ctx.store.drop_heartbeat(self.beat)
        self._on = False
