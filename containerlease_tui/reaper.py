"""Reaper: removes leased containers at their deadline, exactly once, however many reapers run.

One :class:`Reaper` runs either as an asyncio task inside the terminal app or headless
(``containerlease --reaper``, see :func:`run_headless`). How it works:

* **Deadline-driven.** It sleeps until the earliest deadline (``store.next_deadline()``), the
  next expiry-warning point, the next reconciliation sweep or the poll interval, whichever comes
  first; a follower task on the event stream wakes it at once on ``created``, ``extended`` and
  ``released`` events (a new or extended lease may move the earliest deadline).
* **Claims.** Each due lease is claimed (``SET NX PX`` with a random token) before anything is
  done to it; the claim is kept alive while the work lasts and released by compare-and-delete.
  Closing the lease is one ``store.update`` whose ``running → expired`` transition the state
  machine allows only once, so a second reaper racing past a lost claim writes nothing.
* **Retries.** Removal is retried with exponential backoff and jitter; a lease that still fails
  is marked ``failed`` and postponed (with a growing delay) — never dropped from the deadlines.
* **Sweep.** Every ``sweep_interval`` Docker's containers carrying our labels are compared with
  Redis: containers whose record is gone or closed are removed once their label deadline plus
  ``grace`` has passed; records whose container vanished are closed. Containers without our
  labels (lease *and* this installation's instance label) are never touched.
* **Heartbeat.** A running reaper refreshes its entry in ``P:reapers`` every few seconds;
  :func:`reaper_status` tells whether any reaper is alive.
* **Robust.** Redis or Docker being unreachable is logged and backed off from; the loop keeps
  running and catches up on recovery. Stopping finishes in-flight removals; cancelling releases
  claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from containerlease_tui import __version__
from containerlease_tui.backoff import backoff_delay
from containerlease_tui.config import Settings, redact_url
from containerlease_tui.display import expires_in
from containerlease_tui.durations import format_duration, format_duration_seconds
from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    ContainerInfo,
    Engine,
    EngineError,
)
from containerlease_tui.models import (
    EventType,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseStatus,
    lease_hours,
    utcnow,
)
from containerlease_tui.sanitize import json_line
from containerlease_tui.store import Charge, LeaseNotFound, LeaseStore, ReaperBeat, StoreError

LOGGER_NAME: Final = "containerlease_tui.reaper"
# A library logger stays silent unless the application configures logging (the TUI owns the
# terminal: Python's last-resort stderr handler would scribble over the screen).
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())

# Seconds between heartbeats (at most; a shorter poll interval shortens it); entries older than
# HEARTBEAT_TTL_FACTOR periods count as dead.
HEARTBEAT_PERIOD: Final = 5.0
HEARTBEAT_TTL_FACTOR: Final = 3
# Due leases read per pass; a full batch is followed at once by another pass.
DUE_BATCH: Final = 1000
# While a due lease is being handled (here or by another reaper), poll at most this often.
OVERDUE_POLL: Final = 0.5
# Added to every sleep that targets a deadline: waking a hair late makes it due for sure.
WAKE_SLACK: Final = 0.005
# A lease failing again and again is retried after at most this long.
MAX_POSTPONE: Final = timedelta(minutes=5)
# Containers created this close to the start of a sweep are left to the next one.
SWEEP_YOUNG: Final = timedelta(seconds=1)
# Longest wait for best-effort cleanup calls (releasing claims, dropping the heartbeat).
CLEANUP_TIMEOUT: Final = 3.0
# A lease still short of ``running`` this long after its creation, with no live provisioner
# (see ``LeaseService.complete``), was abandoned by a crashed process: the sweep fails it.
STALLED_AFTER: Final = timedelta(minutes=1)
_PROVISIONING: Final = frozenset({LeaseStatus.PENDING, LeaseStatus.PULLING, LeaseStatus.CREATING})
# Events of other actors that may move the earliest deadline.
WAKE_EVENTS: Final = frozenset({EventType.CREATED, EventType.EXTENDED, EventType.RELEASED})

NO_REAPER: Final = "no reaper running — leases will not be cleaned while the app is closed"
NO_REAPER_SHORT: Final = "no reaper running — leases not cleaned once closed"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE: Final = datetime(9999, 1, 1, tzinfo=UTC)


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


class _RemovalFailed(Exception):
    """Every removal attempt failed; the message is the last reason."""


class _Changed(Exception):
    """The record changed under the sweep: leave it alone."""


# --- pure helpers --------------------------------------------------------------------------


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


def humane_left(seconds: float) -> str:
    """``expires in …`` wording (the one formatter: :func:`display.expires_in`)."""
    return expires_in(seconds)


def parse_label_deadline(text: str | None) -> datetime | None:
    """The RFC 3339 deadline of a ``containerlease.expires-at`` label (None if absent or bad)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _short(cid: str) -> str:
    return cid[:12]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:300]


# --- logging -------------------------------------------------------------------------------

_RECORD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``msg`` and the record's ``extra`` fields.

    Callers pass only non-secret fields (lease, owner, container, action, error, counts…); URLs
    go through :func:`~containerlease_tui.config.redact_url` before they get here.
    """

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[1] is not None and "error" not in out:
            out["error"] = _one_line(record.exc_info[1])
        # Not json.dumps alone: it passes C1 controls and bidi overrides from records through.
        return json_line(out, default=str)


# --- the reaper ----------------------------------------------------------------------------


class _LabelIndex:
    """Our labelled containers by lease id, listed once per batch and shared by its workers."""

    def __init__(self, engine: Engine, instance: str) -> None:
        self._engine = engine
        self._instance = instance
        self._lock = asyncio.Lock()
        self._at = -math.inf
        self._by_lease: dict[str, list[str]] | None = None
        self._error: EngineError | None = None
        self._error_at = -math.inf

    async def containers_of(self, lease_id: str, not_before: float) -> list[str]:
        """Ids of the containers labelled with ``lease_id``, from a listing made after
        ``not_before`` (monotonic seconds).

        A listing that failed after ``not_before`` fails the caller at once: when the engine
        hangs, one worker waits out the timeout, not every worker in turn.
        """
        async with self._lock:
            if self._error is not None and self._error_at >= not_before:
                raise type(self._error)(str(self._error))
            if self._by_lease is None or self._at < not_before:
                at = time.monotonic()
                try:
                    infos = await self._engine.list_leased(instance=self._instance)
                except EngineError as exc:
                    self._error, self._error_at = exc, time.monotonic()
                    raise
                self._error = None
                by_lease: dict[str, list[str]] = {}
                for info in infos:
                    if info.labels.get(LABEL_INSTANCE) != self._instance:
                        continue  # the label filter already did this; never trust it blindly
                    owner_lease = info.labels.get(LABEL_LEASE)
                    if owner_lease:
                        by_lease.setdefault(owner_lease, []).append(info.id)
                self._by_lease, self._at = by_lease, at
            return list(self._by_lease.get(lease_id, []))


class Reaper:
    """Deadline-driven removal of leased containers; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: LeaseStore,
        engine: Engine,
        *,
        mode: str = "headless",
        dry_run: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.mode = mode
        self.dry_run = dry_run
        self.log = log or logging.getLogger(LOGGER_NAME)
        cfg = settings.reaper
        self._prefix = settings.redis.key_prefix
        self._lock_ttl = cfg.lock_ttl
        self._interval = cfg.interval
        self._warnings = sorted({w for w in cfg.warnings if w > timedelta(0)})
        self._heartbeat_period = max(1.0, min(HEARTBEAT_PERIOD, cfg.interval.total_seconds()))
        # One attempt: the delete (docker timeout), waiting out a removal already in progress
        # (about 10 s) and the inspects of that wait.
        self._removal_timeout = 2 * settings.docker.timeout + 15.0
        # Backstops, so nothing — a hung engine, a Redis that never answers — can wedge the
        # loop or keep a stop waiting forever: a whole tick, and all the work on one lease.
        redis_call = 3 * (settings.redis.socket_timeout + 3.0)  # a command with its retries
        self._tick_timeout = max(30.0, 4 * redis_call)
        max_backoff = sum(
            cfg.backoff.total_seconds() * 1.5 * 2**i for i in range(max(cfg.retries - 1, 0))
        )
        self._lease_timeout = cfg.retries * self._removal_timeout + max_backoff + 6 * redis_call
        self.beat = ReaperBeat(
            version=__version__,
            mode=mode,
            ttl_seconds=HEARTBEAT_TTL_FACTOR * self._heartbeat_period,
        )
        self.last_result: PassResult | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._passed = asyncio.Event()  # set after the first pass of run()
        self._sem: asyncio.Semaphore | None = None
        self._claims: dict[str, str] = {}  # lease id → token, claims held right now
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, int] = {}  # lease id → failed passes in a row
        # (lease id, warning point, deadline) already warned about: spares Redis a SET NX per
        # lease and pass; warn_once stays the source of truth across reapers.
        self._warned: dict[tuple[str, float, float], float] = {}
        self._sweep_task: asyncio.Task[None] | None = None
        self._next_sweep = -math.inf  # monotonic
        self._heartbeat_on = False

    # --- public API ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reap until ``stop`` is set, then finish in-flight removals and return.

        Cancelling the task instead abandons in-flight work and releases its claims (another
        reaper, or the next start, picks it up once it is due again).
        """
        self._stop = stop
        self._wake = asyncio.Event()
        self._passed = asyncio.Event()
        self._next_sweep = -math.inf
        self.log.info(
            "reaper started",
            extra={
                "action": "start",
                "mode": self.mode,
                "dry_run": self.dry_run,
                "prefix": self._prefix,
                "version": __version__,
            },
        )
        after = await self._stream_position()
        helpers = [
            asyncio.create_task(self._follow_events(after), name="reaper-events"),
            asyncio.create_task(self._relay_stop(stop), name="reaper-stop"),
            asyncio.create_task(self._keep_claims(), name="reaper-claims"),
        ]
        if not self.dry_run:
            helpers.append(asyncio.create_task(self._heartbeats(), name="reaper-heartbeat"))
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
            await self._release_all_claims()
            if self._heartbeat_on:
                with contextlib.suppress(StoreError, TimeoutError):
                    async with asyncio.timeout(CLEANUP_TIMEOUT):
                        await self.store.drop_heartbeat(self.beat)
                self._heartbeat_on = False
            self.log.info("reaper stopped", extra={"action": "stop"})

    async def run_once(self, stop: asyncio.Event | None = None) -> PassResult:
        """One full pass — warnings, due leases, sweep — waiting for all its removals.

        Raises :class:`StoreError` when Redis cannot be read at all; per-lease problems are
        logged and counted in the result. ``stop``, if given and set, keeps unclaimed leases
        from being started (claimed ones are finished).
        """
        self._stop = stop
        result = PassResult(dry_run=self.dry_run)
        keeper = asyncio.create_task(self._keep_claims(), name="reaper-claims")
        try:
            now = utcnow()
            await self._warn(now, result)
            ids = await self.store.due(now, DUE_BATCH)
            # Leases a concurrent run() of this reaper is handling are its business.
            ids = [lease_id for lease_id in ids if lease_id not in self._inflight]
            result.due = len(ids)
            tasks = self._dispatch(ids, result)
            if tasks:
                await asyncio.gather(*tasks)
            if not self._stopping():
                await self._sweep(result)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await self._release_all_claims()
        self._record_pass(now, result)
        self.last_result = result
        self.log.info("pass done", extra={"action": "pass", **result.counts()})
        return result

    # --- the main loop ---------------------------------------------------------------------

    async def _loop(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        errors = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                async with asyncio.timeout(self._tick_timeout):
                    delay = await self._tick()
                if errors:
                    self.log.info("reaper recovered", extra={"action": "recover"})
                errors = 0
            except (StoreError, EngineError, TimeoutError) as exc:
                errors += 1
                delay = error_backoff(errors, self.settings.reaper.backoff, self._interval)
                if isinstance(exc, TimeoutError):
                    exc = StoreError(f"the pass did not finish within {self._tick_timeout:g}s")
                self.log.warning(
                    "pass failed; retrying",
                    extra={"action": "backoff", "error": _one_line(exc), "delay": round(delay, 3)},
                )
            except Exception as exc:  # a bug must not end the reaper: log it loudly, carry on
                errors += 1
                delay = error_backoff(errors, self.settings.reaper.backoff, self._interval)
                self.log.error(
                    "unexpected error in pass",
                    exc_info=exc,
                    extra={"action": "backoff", "error": f"{type(exc).__name__}: {_one_line(exc)}"},
                )
            if stop.is_set():
                break
            await self._sleep(delay)

    async def _tick(self) -> float:
        """Warn, dispatch due leases, start a sweep if one is due; seconds until the next tick."""
        now = utcnow()
        result = PassResult(dry_run=self.dry_run)
        await self._warn(now, result)
        ids = await self.store.due(now, DUE_BATCH)
        fresh = [lease_id for lease_id in ids if lease_id not in self._inflight]
        result.due = len(fresh)
        self._dispatch(fresh, result)
        if time.monotonic() >= self._next_sweep and (
            self._sweep_task is None or self._sweep_task.done()
        ):
            self._next_sweep = (
                time.monotonic() + self.settings.reaper.sweep_interval.total_seconds()
            )
            self._sweep_task = asyncio.create_task(self._sweep_quietly(), name="reaper-sweep")
        self._record_pass(now, result)
        if result.warned or result.due:
            self.log.debug("tick", extra={"action": "tick", **result.counts()})
        if len(ids) >= DUE_BATCH and fresh:
            return 0.0  # more may be due beyond this batch
        return await self._delay()

    async def _delay(self) -> float:
        now = utcnow()
        interval = self._interval.total_seconds()
        moments: list[datetime | None] = [await self.store.next_deadline()]
        horizon = self._interval + timedelta(seconds=1)
        for point in self._warnings:
            rows = await self.store.deadlines_between(now + point, now + point + horizon)
            if rows:
                moments.append(rows[0][1] - point)
        overdue = interval if self.dry_run else min(OVERDUE_POLL, interval)
        delay = wake_delay(now, moments, interval, overdue)
        until_sweep = self._next_sweep - time.monotonic()
        return max(0.0, min(delay, until_sweep + WAKE_SLACK))

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

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _record_pass(self, now: datetime, result: PassResult) -> None:
        self.beat.passes += 1
        self.beat.last_pass = now.isoformat()
        self._passed.set()

    async def _drain(self) -> None:
        """Wait for in-flight removals and a running sweep (stop was asked for)."""
        pending = [*self._inflight.values()]
        if self._sweep_task is not None:
            pending.append(self._sweep_task)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _abort(self) -> None:
        """Cancel in-flight work; each worker releases its claim on the way out."""
        pending = [*self._inflight.values()]
        if self._sweep_task is not None:
            pending.append(self._sweep_task)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- events, heartbeats, claims --------------------------------------------------------

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
        block_ms = int(max(1.0, min(self._interval.total_seconds(), 5.0)) * 1000)
        while True:
            try:
                if after is None:
                    after = await self.store.last_event_id()
                    self._wake.set()  # events may have been missed while Redis was away
                batch = await self.store.follow_events(after=after, block_ms=block_ms)
                errors = 0
            except StoreError:
                errors += 1
                await asyncio.sleep(
                    error_backoff(errors, self.settings.reaper.backoff, self._interval)
                )
                continue
            after = batch.cursor
            if any(event.type in WAKE_EVENTS for event in batch.events):
                self._wake.set()

    async def _heartbeats(self) -> None:
        # The first beat waits (briefly) for the first pass, so it already says when that was.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._heartbeat_period):
                await self._passed.wait()
        while True:
            try:
                await self.store.heartbeat(self.beat)
                self._heartbeat_on = True
            except StoreError as exc:
                self.log.debug("heartbeat failed", extra={"action": "heartbeat", "error": str(exc)})
            await asyncio.sleep(self._heartbeat_period)

    async def _keep_claims(self) -> None:
        """Extend held claims while their work lasts, so a slow removal keeps its lease."""
        period = max(self._lock_ttl.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            for lease_id, token in list(self._claims.items()):
                try:
                    kept = await self.store.extend_claim(lease_id, token, self._lock_ttl)
                except StoreError:
                    continue
                if not kept and self._claims.get(lease_id) == token:
                    self.log.warning(
                        "claim lost", extra={"action": "claim-lost", "lease": lease_id}
                    )

    async def _release(self, lease_id: str, token: str) -> None:
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await self.store.release_claim(lease_id, token)

    async def _release_all_claims(self) -> None:
        claims, self._claims = dict(self._claims), {}
        for lease_id, token in claims.items():
            await self._release(lease_id, token)

    # --- expiry warnings -------------------------------------------------------------------

    async def _warn(self, now: datetime, result: PassResult) -> None:
        """One ``expiring`` event per lease and warning point (the tightest point reached)."""
        if not self._warnings:
            return
        stamp = now.timestamp()
        for key, deadline in list(self._warned.items()):
            if deadline < stamp:
                del self._warned[key]
        rows = await self.store.deadlines_between(now, now + self._warnings[-1])
        if not rows:
            return
        for lease in await self.store.get_many([lease_id for lease_id, _ in rows]):
            if not lease.status.is_active:
                continue
            left = (lease.expires_at - now).total_seconds()
            point = next((p for p in self._warnings if left <= p.total_seconds()), None)
            if left <= 0 or point is None:
                continue
            if lease.created_at > lease.expires_at - point:
                continue  # shorter than the warning point: it never was that far from its end
            detail = f"expires in {humane_left(left)}"
            fields = {"lease": lease.id, "owner": lease.owner, "detail": detail}
            if self.dry_run:
                result.warned += 1
                self.log.info("would warn", extra={"action": "would-warn", **fields})
                continue
            seen = (lease.id, point.total_seconds(), lease.expires_at.timestamp())
            if seen in self._warned:
                continue
            ttl = timedelta(seconds=left + 60)
            first = await self.store.warn_once(lease.id, point, ttl)
            self._warned[seen] = lease.expires_at.timestamp()
            if first:
                await self.store.emit(EventType.EXPIRING, lease, detail=detail)
                result.warned += 1
                self.log.info("expiry warning sent", extra={"action": "warn", **fields})

    # --- due leases ------------------------------------------------------------------------

    def _done(self, lease_id: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(lease_id, None)

    def _dispatch(self, ids: list[str], result: PassResult) -> list[asyncio.Task[None]]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.settings.reaper.concurrency)
        index = _LabelIndex(self.engine, self._prefix)
        tasks = []
        for lease_id in ids:
            task = asyncio.create_task(self._reap(lease_id, result, index), name=f"reap-{lease_id}")
            self._inflight[lease_id] = task
            task.add_done_callback(functools.partial(self._done, lease_id))
            tasks.append(task)
        return tasks

    async def _reap(self, lease_id: str, result: PassResult, index: _LabelIndex) -> None:
        """Handle one due lease; never raises (but lets cancellation through)."""
        assert self._sem is not None
        async with self._sem:
            if self._stopping():
                result.skipped += 1
                return
            try:
                if self.dry_run:
                    await self._reap_dry(lease_id, result, index)
                    return
                token = await self.store.claim(lease_id, self._lock_ttl)
                if token is None:
                    result.skipped += 1
                    self.log.debug(
                        "claimed by another reaper", extra={"action": "skip", "lease": lease_id}
                    )
                    return
                self._claims[lease_id] = token
                self.log.debug("claimed", extra={"action": "claim", "lease": lease_id})
                try:
                    async with asyncio.timeout(self._lease_timeout):
                        await self._reap_claimed(lease_id, result, index)
                finally:
                    if self._claims.get(lease_id) == token:
                        del self._claims[lease_id]
                    await self._release(lease_id, token)
            except (StoreError, EngineError, TimeoutError) as exc:
                result.failed += 1
                self.beat.failed += 1
                error = (
                    f"gave up after {self._lease_timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else _one_line(exc)
                )
                self.log.warning(
                    "could not handle due lease; will retry",
                    extra={"action": "error", "lease": lease_id, "error": error},
                )
            except Exception as exc:
                result.failed += 1
                self.beat.failed += 1
                self.log.error(
                    "unexpected error reaping lease",
                    exc_info=exc,
                    extra={
                        "action": "error",
                        "lease": lease_id,
                        "error": f"{type(exc).__name__}: {_one_line(exc)}",
                    },
                )

    async def _reap_claimed(self, lease_id: str, result: PassResult, index: _LabelIndex) -> None:
        lease = await self.store.get(lease_id)
        now = utcnow()
        if lease is None:
            await self._reap_lost_record(lease_id, result, index)
            return
        fields = {"lease": lease.id, "owner": lease.owner}
        if lease.status.is_terminal:
            await self.store.forget_deadline(lease_id)
            self._failures.pop(lease_id, None)
            result.skipped += 1
            self.log.debug("already closed", extra={"action": "forget", **fields})
            return
        if lease.expires_at > now:
            # Extended meanwhile: make sure its deadline entry says so, then leave it.
            await self.store.postpone(lease_id, lease.expires_at)
            result.skipped += 1
            self.log.debug("extended meanwhile", extra={"action": "skip", **fields})
            return
        try:
            removed = await self._remove_with_retries(lease_id, lease.docker_id, index)
        except _RemovalFailed as exc:
            await self._mark_failed(lease, str(exc), result)
            return
        if removed:
            names = ", ".join(_short(cid) for cid in removed)
            detail = f"container{'s' if len(removed) > 1 else ''} {names} removed"
        else:
            detail = "no container left to remove"

        def close(current: Lease) -> Lease:
            if current.expires_at > utcnow():
                # Extensions are refused while we hold the claim; never expire a live deadline.
                raise _Changed
            return current.transition(LeaseStatus.EXPIRED)

        try:
            await self.store.update(
                lease_id,
                close,
                event=EventType.EXPIRED,
                detail="deadline reached",
                also=[(EventType.REAPED, detail)],
            )
        except IllegalTransition:
            self._failures.pop(lease_id, None)
            result.skipped += 1  # another reaper closed it first: it emitted the events
            self.log.debug("closed by another reaper", extra={"action": "skip", **fields})
            return
        except LeaseNotFound:
            await self.store.forget_deadline(lease_id)
            result.skipped += 1
            return
        except _Changed:
            result.skipped += 1
            self.log.warning("deadline moved during removal", extra={"action": "skip", **fields})
            return
        self._failures.pop(lease_id, None)
        result.reaped += 1
        self.beat.reaped += 1
        self.log.info(
            "reaped",
            extra={
                "action": "reap",
                **fields,
                "container": ",".join(_short(c) for c in removed) or None,
                "lag": round((utcnow() - lease.expires_at).total_seconds(), 3),
            },
        )

    async def _reap_lost_record(
        self, lease_id: str, result: PassResult, index: _LabelIndex
    ) -> None:
        """A deadline without a record: remove what carries its label, then forget it."""
        try:
            removed = await self._remove_with_retries(lease_id, None, index)
        except _RemovalFailed as exc:
            failures = self._failures[lease_id] = self._failures.get(lease_id, 0) + 1
            await self.store.postpone(lease_id, utcnow() + postpone_delay(failures, self._interval))
            result.failed += 1
            self.beat.failed += 1
            self.log.warning(
                "removal failed; will retry",
                extra={"action": "fail", "lease": lease_id, "error": str(exc)},
            )
            return
        await self.store.forget_deadline(lease_id)
        self._failures.pop(lease_id, None)
        if not removed:
            result.skipped += 1
            self.log.debug(
                "record gone, nothing left", extra={"action": "forget", "lease": lease_id}
            )
            return
        names = ", ".join(_short(cid) for cid in removed)
        await self.store.emit(EventType.REAPED, lease_id, "", f"orphan container {names} removed")
        result.reaped += 1
        self.beat.reaped += 1
        self.log.info(
            "reaped orphan (record gone)",
            extra={"action": "orphan", "lease": lease_id, "container": names},
        )

    async def _remove_with_retries(
        self, lease_id: str, docker_id: str | None, index: _LabelIndex
    ) -> list[str]:
        """Remove the lease's container (by id and by label); the ids removed.

        Raises :class:`_RemovalFailed` once ``retries`` attempts have failed.
        """
        attempts = self.settings.reaper.retries
        not_before = -math.inf
        reason = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(retry_delay(attempt - 1, self.settings.reaper.backoff))
            try:
                async with asyncio.timeout(self._removal_timeout):
                    return await self._remove_all(lease_id, docker_id, index, not_before)
            except TimeoutError:
                reason = f"removal did not finish within {self._removal_timeout:g}s"
            except EngineError as exc:
                reason = _one_line(exc)
            not_before = time.monotonic()  # the next attempt lists the containers afresh
            self.log.debug(
                "removal attempt failed",
                extra={
                    "action": "retry",
                    "lease": lease_id,
                    "attempt": attempt + 1,
                    "error": reason,
                },
            )
        raise _RemovalFailed(reason)

    async def _remove_all(
        self, lease_id: str, docker_id: str | None, index: _LabelIndex, not_before: float
    ) -> list[str]:
        ids = [docker_id] if docker_id else []
        ids += [cid for cid in await index.containers_of(lease_id, not_before) if cid != docker_id]
        for cid in ids:
            if not await self.engine.remove(cid):
                raise EngineError(f"container {_short(cid)} is still being removed")
        return ids

    async def _mark_failed(self, lease: Lease, reason: str, result: PassResult) -> None:
        """Record the failure on the lease, then retry it later (it stays in the deadlines)."""
        message = f"reap failed: {reason}"
        failures = self._failures[lease.id] = self._failures.get(lease.id, 0) + 1

        def mutate(current: Lease) -> Lease:
            if current.status is LeaseStatus.FAILED:
                return current.model_copy(update={"error": message, "failure": FailureKind.REAP})
            return current.transition(LeaseStatus.FAILED, error=message, failure=FailureKind.REAP)

        already = lease.status is LeaseStatus.FAILED
        try:
            await self.store.update(
                lease.id,
                mutate,
                event=None if already else EventType.FAILED,
                detail=reason,
            )
        except IllegalTransition:
            pass  # closed meanwhile by someone else; the postpone below is harmless (XX)
        except LeaseNotFound:
            pass
        delay = postpone_delay(failures, self._interval)
        # After the update: it re-wrote the deadline entry with the lease's own deadline.
        await self.store.postpone(lease.id, utcnow() + delay)
        result.failed += 1
        self.beat.failed += 1
        self.log.warning(
            "reap failed; will retry",
            extra={
                "action": "fail",
                "lease": lease.id,
                "owner": lease.owner,
                "container": _short(lease.docker_id) if lease.docker_id else None,
                "error": reason,
                "retry_in": round(delay.total_seconds(), 3),
                "failures": failures,
            },
        )

    async def _reap_dry(self, lease_id: str, result: PassResult, index: _LabelIndex) -> None:
        lease = await self.store.get(lease_id)
        now = utcnow()
        if lease is None:
            found = await index.containers_of(lease_id, -math.inf)
            result.reaped += 1 if found else 0
            result.skipped += 0 if found else 1
            self.log.info(
                "would remove containers of a lost record",
                extra={
                    "action": "would-orphan",
                    "lease": lease_id,
                    "container": ",".join(_short(c) for c in found) or None,
                },
            )
            return
        if lease.status.is_terminal or lease.expires_at > now:
            result.skipped += 1
            return
        labelled = await index.containers_of(lease_id, -math.inf)
        ids = ([lease.docker_id] if lease.docker_id else []) + [
            c for c in labelled if c != lease.docker_id
        ]
        result.reaped += 1
        self.log.info(
            "would reap",
            extra={
                "action": "would-reap",
                "lease": lease.id,
                "owner": lease.owner,
                "status": lease.status.value,
                "container": ",".join(_short(c) for c in ids) or None,
                "overdue": round((now - lease.expires_at).total_seconds(), 3),
            },
        )

    # --- reconciliation sweep --------------------------------------------------------------

    async def _sweep_quietly(self) -> None:
        try:
            await self._sweep(PassResult(dry_run=self.dry_run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.error(
                "unexpected error in sweep",
                exc_info=exc,
                extra={"action": "sweep", "error": f"{type(exc).__name__}: {_one_line(exc)}"},
            )

    async def _sweep(self, result: PassResult) -> None:
        """Compare Docker's containers with Redis (level-triggered); log, never raise on
        Redis or Docker trouble."""
        started = utcnow()
        try:
            containers = await self.engine.list_leased(instance=self._prefix)
        except EngineError as exc:
            self.log.warning("sweep skipped", extra={"action": "sweep", "error": _one_line(exc)})
            return
        ours = [
            c
            for c in containers
            if c.labels.get(LABEL_LEASE) and c.labels.get(LABEL_INSTANCE) == self._prefix
        ]
        try:
            lease_ids = sorted({c.labels[LABEL_LEASE] for c in ours})
            records = {lease.id: lease for lease in await self.store.get_many(lease_ids)}
            scheduled = {
                lease_id for lease_id, _ in await self.store.deadlines_between(_EPOCH, _FAR_FUTURE)
            }
            for info in ours:
                if self._stopping():
                    return
                await self._sweep_container(info, records, scheduled, started, result)
            await self._close_vanished(scheduled, records, {c.id for c in containers}, result)
            await self._fail_stalled(result)
        except StoreError as exc:
            self.log.warning("sweep cut short", extra={"action": "sweep", "error": _one_line(exc)})

    async def _sweep_container(
        self,
        info: ContainerInfo,
        records: dict[str, Lease],
        scheduled: set[str],
        started: datetime,
        result: PassResult,
    ) -> None:
        lease_id = info.labels[LABEL_LEASE]
        lease = records.get(lease_id)
        now = utcnow()
        if lease is not None and not lease.status.is_terminal:
            if lease.expires_at <= now and lease_id not in scheduled:
                # Overdue but not in the deadline set: re-index it; the deadline path reaps it.
                fields = {"lease": lease_id, "owner": lease.owner, "container": _short(info.id)}
                if self.dry_run:
                    self.log.info("would re-schedule", extra={"action": "would-reindex", **fields})
                    return
                with contextlib.suppress(IllegalTransition, LeaseNotFound):
                    await self.store.update(lease_id, lambda current: current)
                    self.log.info(
                        "re-scheduled overdue lease", extra={"action": "reindex", **fields}
                    )
            return
        deadline = parse_label_deadline(info.labels.get(LABEL_EXPIRES))
        if lease is not None:
            # A closed record is authoritative: the lease ended, whatever the label says.
            ended = lease.ended_at or lease.expires_at
            deadline = ended if deadline is None else min(deadline, ended)
        owner = info.labels.get(LABEL_OWNER, lease.owner if lease else "")
        fields = {"lease": lease_id, "owner": owner, "container": _short(info.id)}
        if deadline is None:
            self.log.warning(
                "labelled container without a deadline left alone",
                extra={"action": "sweep", **fields},
            )
            return
        if now < deadline + self.settings.reaper.grace:
            return
        if info.created_at is not None and info.created_at >= started - SWEEP_YOUNG:
            return  # created as the sweep began (Docker's list has 1 s resolution): next sweep
        why = "record gone" if lease is None else f"lease {lease.status.value}"
        if self.dry_run:
            result.swept += 1
            self.log.info(
                "would remove orphan", extra={"action": "would-orphan", "reason": why, **fields}
            )
            return
        token = await self.store.claim(lease_id, self._lock_ttl)
        if token is None:
            return  # a reaper is on it right now
        self._claims[lease_id] = token
        try:
            if await self.engine.inspect(info.id) is None:
                return  # someone else removed it meanwhile
            async with asyncio.timeout(self._removal_timeout):
                removed = await self.engine.remove(info.id)
            if not removed:
                self.log.warning("orphan still being removed", extra={"action": "orphan", **fields})
                return
            if lease is None:
                await self.store.forget_deadline(lease_id)
            await self.store.emit(
                EventType.REAPED, lease_id, owner, f"orphan container {_short(info.id)} removed"
            )
            result.swept += 1
            self.beat.reaped += 1
            self.log.info("reaped orphan", extra={"action": "orphan", "reason": why, **fields})
        except (EngineError, TimeoutError) as exc:
            self.log.warning(
                "orphan removal failed",
                extra={"action": "orphan", "error": _one_line(exc), **fields},
            )
        finally:
            if self._claims.get(lease_id) == token:
                del self._claims[lease_id]
            await self._release(lease_id, token)

    async def _close_vanished(
        self,
        scheduled: set[str],
        records: dict[str, Lease],
        existing: set[str],
        result: PassResult,
    ) -> None:
        """Running/stopped leases whose container no longer exists: expired or failed."""
        missing = [lease_id for lease_id in scheduled if lease_id not in records]
        leases = list(records.values()) + await self.store.get_many(missing)
        for lease in leases:
            if self._stopping():
                return
            if (
                lease.status not in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
                or not lease.docker_id
                or lease.docker_id in existing
            ):
                continue
            try:
                if await self.engine.inspect(lease.docker_id) is not None:
                    continue  # it exists after all (created after the listing, or unlabelled)
            except EngineError as exc:
                self.log.warning(
                    "sweep inspect failed", extra={"action": "sweep", "error": str(exc)}
                )
                return
            await self._close_one_vanished(lease, result)

    async def _close_one_vanished(self, lease: Lease, result: PassResult) -> None:
        expected = lease.docker_id
        passed = lease.expires_at <= utcnow()
        fields = {"lease": lease.id, "owner": lease.owner, "container": _short(expected or "")}
        if self.dry_run:
            result.swept += 1
            self.log.info(
                "would close lease whose container vanished",
                extra={"action": "would-close", "expired": passed, **fields},
            )
            return
        token = await self.store.claim(lease.id, self._lock_ttl)
        if token is None:
            return
        self._claims[lease.id] = token

        def mutate(current: Lease) -> Lease:
            if (
                current.status not in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
                or current.docker_id != expected
            ):
                raise _Changed
            if passed:
                return current.transition(LeaseStatus.EXPIRED)
            return current.transition(
                LeaseStatus.FAILED, error="container disappeared", failure=FailureKind.VANISHED
            )

        try:
            await self.store.update(
                lease.id,
                mutate,
                event=EventType.EXPIRED if passed else EventType.FAILED,
                detail="container had disappeared" if passed else "container disappeared",
            )
        except (_Changed, IllegalTransition, LeaseNotFound):
            return
        finally:
            if self._claims.get(lease.id) == token:
                del self._claims[lease.id]
            await self._release(lease.id, token)
        result.swept += 1
        self.log.info(
            "closed lease whose container vanished",
            extra={"action": "close", "status": "expired" if passed else "failed", **fields},
        )

    async def _fail_stalled(self, result: PassResult) -> None:
        """Leases left short of ``running`` by a provisioner that died: clean up, mark failed.

        Without this such a lease would hold its quota slot until its deadline.
        """
        now = utcnow()
        candidates = [
            lease
            for lease in await self.store.get_many(await self.store.active_ids())
            if lease.status in _PROVISIONING and now - lease.created_at > STALLED_AFTER
        ]
        if not candidates:
            return
        alive = await self.store.provisioning_alive([lease.id for lease in candidates])
        index = _LabelIndex(self.engine, self._prefix)
        for lease in candidates:
            if lease.id in alive or self._stopping():
                continue
            fields = {"lease": lease.id, "owner": lease.owner, "status": lease.status.value}
            if self.dry_run:
                result.swept += 1
                self.log.info(
                    "would fail stalled provision", extra={"action": "would-fail", **fields}
                )
                continue
            token = await self.store.claim(lease.id, self._lock_ttl)
            if token is None:
                continue
            self._claims[lease.id] = token
            try:
                await self._fail_one_stalled(lease, index, result, fields)
            finally:
                if self._claims.get(lease.id) == token:
                    del self._claims[lease.id]
                await self._release(lease.id, token)

    async def _fail_one_stalled(
        self, lease: Lease, index: _LabelIndex, result: PassResult, fields: dict[str, str]
    ) -> None:
        if (await self.store.provisioning_alive([lease.id])) or self._stopping():
            return  # a provisioner (re)appeared after all
        try:
            await self._remove_with_retries(lease.id, lease.docker_id, index)
        except _RemovalFailed as exc:
            self.log.warning(
                "stalled provision: removal failed",
                extra={"action": "stalled", "error": str(exc), **fields},
            )
            return
        reason = "provisioning stopped: the process provisioning it is gone"
        budget = self.settings.limits.daily_budget_hours
        refund = (
            Charge(lease.owner, -lease_hours(lease.lifetime), day=lease.created_at)
            if budget is not None
            else None
        )

        def mutate(current: Lease) -> Lease:
            if current.status not in _PROVISIONING:
                raise _Changed
            return current.transition(
                LeaseStatus.FAILED, error=reason, failure=FailureKind.PROVISION
            )

        try:
            await self.store.update(
                lease.id, mutate, event=EventType.FAILED, detail=reason, charge=refund
            )
        except (_Changed, IllegalTransition, LeaseNotFound):
            return
        result.swept += 1
        self.log.info("failed stalled provision", extra={"action": "stalled", **fields})


# --- status and the headless daemon --------------------------------------------------------


def _last_pass(beat: ReaperBeat) -> datetime:
    try:
        return datetime.fromisoformat(beat.last_pass) if beat.last_pass else _EPOCH
    except ValueError:
        return _EPOCH


@dataclass(frozen=True)
class ReaperStatus:
    """The reapers alive for this installation, read from their heartbeats: what ``doctor``
    prints and the app's status bar shows, as fields (nothing parses the sentence)."""

    beats: tuple[ReaperBeat, ...]

    @property
    def alive(self) -> bool:
        return bool(self.beats)

    @property
    def count(self) -> int:
        return len(self.beats)

    @property
    def newest(self) -> ReaperBeat | None:
        """The beat with the latest pass (the one to name)."""
        return max(self.beats, key=_last_pass) if self.beats else None

    def last_pass_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the newest reaper's last pass; None before its first."""
        beat = self.newest
        if beat is None or _last_pass(beat) <= _EPOCH:
            return None
        return max(0.0, ((now or utcnow()) - _last_pass(beat)).total_seconds())

    def describe(self, now: datetime | None = None) -> str:
        """One line for people, e.g. ``reaper alive on devbox (pid 42, last pass 3 s ago)``."""
        return self.forms(now)[0]

    def forms(self, now: datetime | None = None) -> list[str]:
        """The line and shorter readings of it, longest first (for a narrow status bar)."""
        beat = self.newest
        if beat is None:
            return [NO_REAPER, NO_REAPER_SHORT, "no reaper running"]
        age = self.last_pass_age(now)
        when = (
            "no pass yet" if age is None else f"last pass {format_duration_seconds(round(age))} ago"
        )
        more = f" and {self.count - 1} more" if self.count > 1 else ""
        named = f"reaper alive on {beat.host}"
        return list(
            dict.fromkeys(
                [f"{named} (pid {beat.pid}, {when}){more}", named + more, named, "reaper alive"]
            )
        )


async def reaper_report(store: LeaseStore) -> ReaperStatus:
    """The live reapers (for ``LeaseService.reaper_status``). Raises :class:`StoreError` when
    Redis cannot be reached."""
    return ReaperStatus(tuple(await store.reapers()))


async def reaper_status(store: LeaseStore) -> str:
    """One line on the reapers alive. Raises :class:`StoreError` when Redis cannot be reached."""
    return (await reaper_report(store)).describe()


def _json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


async def run_headless(settings: Settings, *, once: bool, dry_run: bool) -> int:
    """``containerlease --reaper``: JSON lines on stderr; 0 on a clean stop.

    SIGTERM or SIGINT asks the reaper to stop: in-flight removals finish, claims are released,
    the heartbeat is dropped and 0 is returned. A second signal abandons in-flight work (claims
    are still released) and returns 1. With ``once``, one pass is made; the result is 1 when
    Redis could not be read or a lease could not be reaped (it is retried by the next pass).
    """
    log = logging.getLogger(f"{LOGGER_NAME}.headless")
    log.propagate = False
    log.setLevel(logging.DEBUG if os.environ.get("CONTAINERLEASE_DEBUG") else logging.INFO)
    handler = _json_handler()
    log.addHandler(handler)
    store = LeaseStore.from_settings(settings)
    engine = Engine(settings.docker)
    reaper = Reaper(settings, store, engine, mode="headless", dry_run=dry_run, log=log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals: list[signal.Signals] = []
    aborted = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal aborted
        if not stop.is_set():
            log.info(
                "stop requested; finishing in-flight removals",
                extra={"action": "signal", "signal": sig.name},
            )
            stop.set()
        elif not aborted and work is not None:
            aborted = True
            log.warning("second signal: abandoning in-flight work", extra={"signal": sig.name})
            work.cancel()

    work: asyncio.Task[object] | None = None
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            signals.append(sig)
    log.info(
        "headless reaper",
        extra={
            "action": "config",
            "redis": redact_url(settings.redis.url),
            "docker": redact_url(settings.docker.url),
            "prefix": settings.redis.key_prefix,
            "once": once,
            "dry_run": dry_run,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "interval": format_duration(settings.reaper.interval),
        },
    )
    code = 0
    try:
        coro: Awaitable[object] = reaper.run_once(stop) if once else reaper.run(stop)
        work = asyncio.ensure_future(coro)
        try:
            outcome = await work
        except asyncio.CancelledError:
            if not aborted or (main is not None and main.cancelling()):
                raise
            return 1
        except StoreError as exc:
            log.error("pass failed", extra={"action": "pass", "error": _one_line(exc)})
            return 1
        except Exception as exc:  # a bug: one JSON line, not a traceback
            log.error(
                "reaper crashed",
                exc_info=exc,
                extra={"action": "crash", "error": f"{type(exc).__name__}: {_one_line(exc)}"},
            )
            return 1
        if isinstance(outcome, PassResult) and outcome.failed and not stop.is_set():
            code = 1
        return code
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await engine.close()
        with contextlib.suppress(Exception):
            await store.close()
        log.removeHandler(handler)


__all__ = [
    "NO_REAPER",
    "JsonFormatter",
    "PassResult",
    "Reaper",
    "ReaperStatus",
    "error_backoff",
    "humane_left",
    "parse_label_deadline",
    "postpone_delay",
    "reaper_report",
    "reaper_status",
    "retry_delay",
    "run_headless",
    "wake_delay",
]
