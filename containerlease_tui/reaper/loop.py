"""The :class:`Reaper` itself: its pass loop (``run``), one pass (``run_once``), stopping.

The jobs live beside it — claims, heartbeat, expiry warnings, reaping, the sweep — each an
object made here around one shared :class:`~containerlease_tui.reaper.context.ReaperContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import datetime, timedelta
from typing import Final

from containerlease_tui import __version__
from containerlease_tui.config import Settings
from containerlease_tui.engine import EngineError, EngineUnavailable
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.models import EventType, utcnow
from containerlease_tui.reaper.adoption import Adopter
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
    FOLLOW_BACKOFF_CAP,
    OVERDUE_POLL,
    PROBE_PERIOD,
    PROBE_TIMEOUT,
    STALLED_CHECK,
    WAKE_SLACK,
    error_backoff,
    wake_delay,
)
from containerlease_tui.store import StoreError, StoreRefused, StoreUnavailable
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
        self.adopter = Adopter(ctx, self._wake_up)
        # Records lost one by one (eviction) are adopted where they are found missing.
        self.sweeper.adopt = self.adopter.adopt
        self.reaping.adopt = self.adopter.adopt
        self.last_result: PassResult | None = None
        self._wake: asyncio.Event | None = None
        self._stalled_task: asyncio.Task[None] | None = None
        self._stalled_next = -math.inf  # monotonic

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
            helpers.append(asyncio.create_task(self.adopter.watch(), name="reaper-epoch"))
        try:
            await self._loop(stop)
            await self._drain()
        except asyncio.CancelledError:
            await self._abort()
            raise
        finally:
            await _cancel(helpers)
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
            await _cancel([keeper])
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
        try:
            await self.expiry.warn(now, result)
        except StoreRefused as exc:
            # Redis answers but will not write: warnings wait, removals must not.
            self.log.debug("warnings skipped", extra={"action": "warn", "error": one_line(exc)})
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
                if isinstance(exc, StoreUnavailable | EngineUnavailable) and not stop.is_set():
                    await self._await_return(delay, exc)
                    continue
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
        await self._engine_back()
        now = utcnow()
        result = PassResult(dry_run=self.dry_run)
        _, full = await self._start_pass(now, result)
        self.sweeper.start_if_due()
        self._stalled_if_due()
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
        if self.reaping.unclosed:
            delay = min(delay, OVERDUE_POLL)  # removed, not yet closed: retry the write soon
        stalled = self._stalled_next - time.monotonic() + WAKE_SLACK
        return max(0.0, min(delay, self.sweeper.seconds_until_due() + WAKE_SLACK, stalled))

    # --- outages -----------------------------------------------------------------------------

    async def _await_return(self, delay: float, exc: StoreError | EngineError) -> None:
        """Wait ``delay`` after a failed pass, asking what failed every :data:`PROBE_PERIOD`
        whether it answers again: the next pass starts as soon as it does."""
        assert self._wake is not None
        probe = self.engine.ping if isinstance(exc, EngineError) else self.store.ping
        until = time.monotonic() + delay
        while (left := until - time.monotonic()) > 0:
            await self._sleep(min(PROBE_PERIOD, left))
            if self._wake.is_set():
                return  # stop, or an event: Redis is answering
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await probe()
            except (StoreError, EngineError, TimeoutError):
                continue
            return

    async def _engine_back(self) -> None:
        """While reaping found the engine unreachable: a ping first (EngineUnavailable while it
        still is), so due leases wait for it instead of failing one by one and burning their
        retries."""
        if not self._ctx.engine_down:
            return
        async with asyncio.timeout(PROBE_TIMEOUT + self.settings.docker.timeout):
            await self.engine.ping()
        self._ctx.engine_down = False
        self.log.info("engine reachable again", extra={"action": "recover"})

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- provisions whose process died -------------------------------------------------------

    def _stalled_if_due(self) -> None:
        """Every :data:`STALLED_CHECK` s, look for provisions whose process died (the sweep,
        which also does, runs far less often)."""
        now = time.monotonic()
        if now < self._stalled_next or self._stalled_task is not None:
            return
        self._stalled_next = now + STALLED_CHECK

        async def check() -> None:
            try:
                await self.sweeper.check_stalled(PassResult(dry_run=self.dry_run))
            finally:
                self._stalled_task = None

        self._stalled_task = asyncio.create_task(check(), name="reaper-stalled")

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
        if self._stalled_task is not None:
            pending.append(self._stalled_task)
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
                # Capped low: the follower is back within a second of Redis.
                cap = min(interval, timedelta(seconds=FOLLOW_BACKOFF_CAP))
                await asyncio.sleep(error_backoff(errors, self.settings.reaper.backoff, cap))
                continue
            after = batch.cursor
            for entry_id in batch.skipped:  # stepped over: each is read (and logged) once
                self.log.warning(
                    "unreadable event skipped", extra={"action": "events", "entry": entry_id}
                )
            if any(event.type in WAKE_EVENTS for event in batch.events):
                self._wake.set()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel helper tasks and wait for them; a cancellation swallowed inside a client library
    (seen in redis-py while Redis refuses writes) is repeated, so a stop never hangs."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(5):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CLEANUP_TIMEOUT)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: never "exception was never retrieved"
