"""The :class:`Reaper` itself: its pass loop (``run``), one pass (``run_once``), stopping.

The jobs live beside it — claims, heartbeat, expiry warnings, reaping, the sweep — each an
object made here around one shared :class:`~containerlease_tui.reaper.context.ReaperContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Final

from containerlease_tui import __version__
from containerlease_tui.config import Settings
from containerlease_tui.engine import EngineError
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.models import EventType, utcnow
from containerlease_tui.reaper.claims import Claims
from containerlease_tui.reaper.context import PassResult, ReaperContext
from containerlease_tui.reaper.expiry import ExpiryWarner
from containerlease_tui.reaper.heartbeat import Heartbeat
from containerlease_tui.reaper.logs import LOGGER_NAME, crash_text, one_line
from containerlease_tui.reaper.reaping import DueReaping
from containerlease_tui.reaper.removal import Remover
from containerlease_tui.reaper.sweep import Sweeper
from containerlease_tui.reaper.timing import (
    CLEANUP_TIMEOUT,
    OVERDUE_POLL,
    WAKE_SLACK,
    error_backoff,
    wake_delay,
)
from containerlease_tui.store import StoreError
from containerlease_tui.store.protocol import Store

# Events of other actors that may move the earliest deadline.
WAKE_EVENTS: Final = frozenset({EventType.CREATED, EventType.EXTENDED, EventType.RELEASED})


class Reaper:
    """Deadline-driven removal of leased containers; see the package docstring.

    The loop and its wake-ups live here; each job is an object it composes: :class:`Claims`,
    :class:`Heartbeat`, :class:`ExpiryWarner`, :class:`DueReaping` and :class:`Sweeper`.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Runtime,
        *,
        mode: str = "headless",
        dry_run: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.mode = mode
        log = log or logging.getLogger(LOGGER_NAME)
        ctx = self._ctx = ReaperContext(settings, store, engine, dry_run=dry_run, log=log)
        self.claims = Claims(ctx)
        self.heartbeat = Heartbeat(ctx, mode)
        self.beat = self.heartbeat.beat
        self.expiry = ExpiryWarner(ctx)
        remover = Remover(ctx)
        self.reaping = DueReaping(ctx, self.claims, self.heartbeat, remover)
        self.sweeper = Sweeper(ctx, self.claims, self.heartbeat, remover)
        self.last_result: PassResult | None = None
        self._wake: asyncio.Event | None = None

    # The jobs read these from the shared context, so assigning one here (as a test swaps in
    # another store) reaches every job.

    @property
    def settings(self) -> Settings:
        return self._ctx.settings

    @property
    def store(self) -> Store:
        return self._ctx.store

    @store.setter
    def store(self, store: Store) -> None:
        self._ctx.store = store

    @property
    def engine(self) -> Runtime:
        return self._ctx.engine

    @engine.setter
    def engine(self, engine: Runtime) -> None:
        self._ctx.engine = engine

    @property
    def dry_run(self) -> bool:
        return self._ctx.dry_run

    @property
    def log(self) -> logging.Logger:
        return self._ctx.log

    @log.setter
    def log(self, log: logging.Logger) -> None:
        self._ctx.log = log

    # --- public API ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reap until ``stop`` is set, then finish in-flight removals and return.

        Cancelling the task instead abandons in-flight work and releases its claims (another
        reaper, or the next start, picks it up once it is due again).
        """
        self._ctx.stop = stop
        self._wake = asyncio.Event()
        self.heartbeat.reset()
        self.sweeper.reset()
        self.log.info(
            "reaper started",
            extra={
                "action": "start",
                "mode": self.mode,
                "dry_run": self.dry_run,
                "prefix": self._ctx.prefix,
                "version": __version__,
            },
        )
        after = await self._stream_position()
        helpers = [
            asyncio.create_task(self._follow_events(after), name="reaper-events"),
            asyncio.create_task(self._relay_stop(stop), name="reaper-stop"),
            asyncio.create_task(self.claims.keep(), name="reaper-claims"),
        ]
        if not self.dry_run:
            helpers.append(asyncio.create_task(self.heartbeat.run(), name="reaper-heartbeat"))
        try:
            await self._loop(stop)
            await self._drain()
        except asyncio.CancelledError:
            await self._abort()
            raise
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.claims.release_all()
            await self.heartbeat.drop()
            self.log.info("reaper stopped", extra={"action": "stop"})

    async def run_once(self, stop: asyncio.Event | None = None) -> PassResult:
        """One full pass — warnings, due leases, sweep — waiting for all its removals.

        Raises :class:`StoreError` when Redis cannot be read at all; per-lease problems are
        logged and counted in the result. ``stop``, if given and set, keeps unclaimed leases
        from being started (claimed ones are finished).
        """
        self._ctx.stop = stop
        result = PassResult(dry_run=self.dry_run)
        keeper = asyncio.create_task(self.claims.keep(), name="reaper-claims")
        try:
            now = utcnow()
            tasks, _ = await self._start_pass(now, result)
            if tasks:
                await asyncio.gather(*tasks)
            if not self._ctx.stopping():
                await self.sweeper.sweep(result)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await self.claims.release_all()
        self.heartbeat.passed(now)
        self.last_result = result
        self.log.info("pass done", extra={"action": "pass", **result.counts()})
        return result

    # --- the main loop ---------------------------------------------------------------------

    async def _start_pass(
        self, now: datetime, result: PassResult
    ) -> tuple[list[asyncio.Task[None]], bool]:
        """Warn, then start the due leases; their tasks, and whether the due batch was full."""
        await self.expiry.warn(now, result)
        return await self.reaping.start_due(now, result)

    async def _loop(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        cfg, tick_timeout = self.settings.reaper, self._ctx.tick_timeout
        errors = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                async with asyncio.timeout(tick_timeout):
                    delay = await self._tick()
                if errors:
                    self.log.info("reaper recovered", extra={"action": "recover"})
                errors = 0
            except (StoreError, EngineError, TimeoutError) as exc:
                errors += 1
                delay = error_backoff(errors, cfg.backoff, self._ctx.interval)
                if isinstance(exc, TimeoutError):
                    exc = StoreError(f"the pass did not finish within {tick_timeout:g}s")
                self.log.warning(
                    "pass failed; retrying",
                    extra={"action": "backoff", "error": one_line(exc), "delay": round(delay, 3)},
                )
            except Exception as exc:  # a bug must not end the reaper: log it loudly, carry on
                errors += 1
                delay = error_backoff(errors, cfg.backoff, self._ctx.interval)
                self.log.error(
                    "unexpected error in pass",
                    exc_info=exc,
                    extra={"action": "backoff", "error": crash_text(exc)},
                )
            if stop.is_set():
                break
            await self._sleep(delay)

    async def _tick(self) -> float:
        """Warn, dispatch due leases, start a sweep if one is due; seconds until the next tick."""
        now = utcnow()
        result = PassResult(dry_run=self.dry_run)
        _, full = await self._start_pass(now, result)
        self.sweeper.start_if_due()
        self.heartbeat.passed(now)
        if result.warned or result.due:
            self.log.debug("tick", extra={"action": "tick", **result.counts()})
        if full:
            return 0.0  # more may be due beyond this batch
        return await self._delay()

    async def _delay(self) -> float:
        now = utcnow()
        interval = self._ctx.interval.total_seconds()
        moments: list[datetime | None] = [await self.store.next_deadline()]
        moments += await self.expiry.next_moments(now)
        overdue = interval if self.dry_run else min(OVERDUE_POLL, interval)
        delay = wake_delay(now, moments, interval, overdue)
        return max(0.0, min(delay, self.sweeper.seconds_until_due() + WAKE_SLACK))

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        await stop.wait()
        self._wake.set()

    def _pending(self) -> list[asyncio.Task[None]]:
        """In-flight removals and a running sweep."""
        pending = [*self.reaping.inflight.values()]
        if self.sweeper.task is not None:
            pending.append(self.sweeper.task)
        return pending

    async def _drain(self) -> None:
        """Wait for in-flight removals and a running sweep (stop was asked for)."""
        pending = self._pending()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _abort(self) -> None:
        """Cancel in-flight work; each worker releases its claim on the way out."""
        pending = self._pending()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- wake-ups from the event stream ----------------------------------------------------

    async def _stream_position(self) -> str | None:
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                return await self.store.last_event_id()
        except (StoreError, TimeoutError):
            return None  # the follower finds its place once Redis answers

    async def _follow_events(self, after: str | None) -> None:
        """Wake the main loop on events that may move the earliest deadline."""
        assert self._wake is not None
        errors = 0
        interval = self._ctx.interval
        block_ms = int(max(1.0, min(interval.total_seconds(), 5.0)) * 1000)
        while True:
            try:
                if after is None:
                    after = await self.store.last_event_id()
                    self._wake.set()  # events may have been missed while Redis was away
                batch = await self.store.follow_events(after=after, block_ms=block_ms)
                errors = 0
            except StoreError:
                errors += 1
                await asyncio.sleep(error_backoff(errors, self.settings.reaper.backoff, interval))
                continue
            after = batch.cursor
            for entry_id in batch.skipped:  # stepped over: each is read (and logged) once
                self.log.warning(
                    "unreadable event skipped", extra={"action": "events", "entry": entry_id}
                )
            if any(event.type in WAKE_EVENTS for event in batch.events):
                self._wake.set()
