"""Reaping due leases: claim each, remove its containers, close it ``expired`` (or postpone)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from containerlease_tui.engine import ContainerInfo, EngineError, EngineUnavailable
from containerlease_tui.models import (
    EventType,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseStatus,
    utcnow,
)
from containerlease_tui.reaper.claims import Claims
from containerlease_tui.reaper.context import Changed, PassResult, ReaperContext
from containerlease_tui.reaper.heartbeat import Heartbeat
from containerlease_tui.reaper.logs import crash_text, one_line, short
from containerlease_tui.reaper.removal import LabelIndex, RemovalFailed, Remover
from containerlease_tui.reaper.timing import DUE_BATCH, postpone_delay
from containerlease_tui.store import CorruptRecord, LeaseNotFound, StoreError, StoreRefused


def _names(ids: list[str]) -> str:
    return ", ".join(short(cid) for cid in ids)


class DueReaping:
    """Handles the leases whose deadline has passed, each in its own task, a few at a time."""

    def __init__(
        self, ctx: ReaperContext, claims: Claims, heartbeat: Heartbeat, remover: Remover
    ) -> None:
        self._ctx = ctx
        self._claims = claims
        self._heartbeat = heartbeat
        self._remover = remover
        self._sem: asyncio.Semaphore | None = None  # made in the loop that runs the tasks
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, int] = {}  # lease id → failed passes in a row
        self.unclosed: dict[str, list[str]] = {}
        """Leases whose containers were removed but whose record is not closed yet (Redis
        refused the write): lease id → the container ids removed."""
        self.adopt: Callable[[ContainerInfo], Awaitable[bool]] | None = None
        """Rebuilds a lost record from a container's labels (set by the reaper)."""

    async def start_due(
        self, now: datetime, result: PassResult
    ) -> tuple[list[asyncio.Task[None]], bool]:
        """Start a task per due lease not already in flight; the tasks, and whether the batch
        was full (more may be due beyond it)."""
        ids = await self._ctx.store.due(now, DUE_BATCH)
        # Leases a concurrent run() of this reaper is handling are its business.
        fresh = [lease_id for lease_id in ids if lease_id not in self.inflight]
        result.due = len(fresh)
        return self._dispatch(fresh, result), len(ids) >= DUE_BATCH and bool(fresh)

    def _dispatch(self, ids: list[str], result: PassResult) -> list[asyncio.Task[None]]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._ctx.settings.reaper.concurrency)
        index = self._remover.index()
        tasks = []
        for lease_id in ids:
            task = asyncio.create_task(self._reap(lease_id, result, index), name=f"reap-{lease_id}")
            self.inflight[lease_id] = task
            task.add_done_callback(functools.partial(self._done, lease_id))
            tasks.append(task)
        return tasks

    def _done(self, lease_id: str, _task: asyncio.Task[None]) -> None:
        self.inflight.pop(lease_id, None)

    async def _reap(self, lease_id: str, result: PassResult, index: LabelIndex) -> None:
        """Handle one due lease; never raises (but lets cancellation through)."""
        assert self._sem is not None
        log = self._ctx.log
        async with self._sem:
            if self._ctx.stopping():
                result.skipped += 1
                return
            try:
                if self._ctx.dry_run:
                    await self._reap_dry(lease_id, result, index)
                    return
                async with self._claims.claimed(lease_id) as held:
                    if not held:
                        result.skipped += 1
                        log.debug(
                            "claimed by another reaper", extra={"action": "skip", "lease": lease_id}
                        )
                        return
                    log.debug("claimed", extra={"action": "claim", "lease": lease_id})
                    async with asyncio.timeout(self._ctx.lease_timeout):
                        await self._reap_claimed(lease_id, result, index)
            except CorruptRecord as bad:
                await self._postpone_unreadable(bad, result)
            except StoreRefused:
                await self._reap_refused(lease_id, result, index)
            except EngineUnavailable as exc:
                self._heartbeat.failed(result)  # in this pass's counts; the lease is not marked
                self._engine_unreachable(lease_id, exc)
            except (StoreError, EngineError, TimeoutError) as exc:
                self._heartbeat.failed(result)
                error = (
                    f"gave up after {self._ctx.lease_timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else one_line(exc)
                )
                log.warning(
                    "could not handle due lease; will retry",
                    extra={"action": "error", "lease": lease_id, "error": error},
                )
            except Exception as exc:
                self._heartbeat.failed(result)
                log.error(
                    "unexpected error reaping lease",
                    exc_info=exc,
                    extra={"action": "error", "lease": lease_id, "error": crash_text(exc)},
                )

    async def _postpone_unreadable(self, bad: CorruptRecord, result: PassResult) -> None:
        """A due lease whose record cannot be read: logged once, retried later (backing off),
        so it neither stops the other leases nor makes the reaper spin on it."""
        result.skipped += 1
        self._ctx.note_unreadable(bad)
        failures = self._failures[bad.lease_id] = self._failures.get(bad.lease_id, 0) + 1
        if self._ctx.dry_run:
            return
        delay = postpone_delay(failures, self._ctx.interval)
        with contextlib.suppress(StoreError):  # Redis trouble: the next pass tries again
            await self._ctx.store.postpone(bad.lease_id, utcnow() + delay)

    async def _reap_claimed(self, lease_id: str, result: PassResult, index: LabelIndex) -> None:
        lease = await self._ctx.store.get(lease_id)
        self._ctx.readable(lease_id)
        now = utcnow()
        if lease is None:
            await self._reap_lost_record(lease_id, result, index)
            return
        if not await self._still_due(lease, now, result):
            return
        try:
            removed = await self._remover.remove_with_retries(lease_id, lease.docker_id, index)
        except RemovalFailed as exc:
            await self._mark_failed(lease, str(exc), result)
            return
        earlier = self.unclosed.get(lease_id, [])
        removed = earlier + [c for c in removed if c not in earlier]
        self.unclosed[lease_id] = removed  # until the record says so
        closed = await self._close_expired(lease, removed, result)
        self.unclosed.pop(lease_id, None)
        if not closed:
            return
        self._failures.pop(lease_id, None)
        self._heartbeat.reaped(result)
        self._ctx.log.info(
            "reaped",
            extra={
                "action": "reap",
                "lease": lease.id,
                "owner": lease.owner,
                "container": ",".join(short(c) for c in removed) or None,
                "lag": round((utcnow() - lease.expires_at).total_seconds(), 3),
            },
        )

    async def _still_due(self, lease: Lease, now: datetime, result: PassResult) -> bool:
        """False (after tidying its deadline entry) for a lease closed or extended meanwhile."""
        store, fields = self._ctx.store, {"lease": lease.id, "owner": lease.owner}
        if lease.status.is_terminal:
            await store.forget_deadline(lease.id)
            self._failures.pop(lease.id, None)
            result.skipped += 1
            self._ctx.log.debug("already closed", extra={"action": "forget", **fields})
            return False
        if lease.expires_at > now:
            # Extended meanwhile: make sure its deadline entry says so, then leave it.
            await store.postpone(lease.id, lease.expires_at)
            result.skipped += 1
            self._ctx.log.debug("extended meanwhile", extra={"action": "skip", **fields})
            return False
        return True

    async def _close_expired(self, lease: Lease, removed: list[str], result: PassResult) -> bool:
        """Close the lease ``expired`` with its ``reaped`` event; False if someone beat us."""
        store, log = self._ctx.store, self._ctx.log
        fields = {"lease": lease.id, "owner": lease.owner}
        if removed:
            detail = f"container{'s' if len(removed) > 1 else ''} {_names(removed)} removed"
        else:
            detail = "no container left to remove"
        refused = self._remover.refused.pop(lease.id, None)
        if refused:
            detail = f"{detail}; {refused}"

        def close(current: Lease) -> Lease:
            if current.expires_at > utcnow():
                # Extensions are refused while we hold the claim; never expire a live deadline.
                raise Changed
            return current.transition(LeaseStatus.EXPIRED)

        try:
            await store.update(
                lease.id,
                close,
                event=EventType.EXPIRED,
                detail="deadline reached",
                also=[(EventType.REAPED, detail)],
            )
        except IllegalTransition:
            self._failures.pop(lease.id, None)
            result.skipped += 1  # another reaper closed it first: it emitted the events
            log.debug("closed by another reaper", extra={"action": "skip", **fields})
            return False
        except LeaseNotFound:
            await store.forget_deadline(lease.id)
            result.skipped += 1
            return False
        except Changed:
            result.skipped += 1
            log.warning("deadline moved during removal", extra={"action": "skip", **fields})
            return False
        return True

    async def _reap_lost_record(self, lease_id: str, result: PassResult, index: LabelIndex) -> None:
        """A deadline without a record: remove what carries its label, then forget it."""
        store, log = self._ctx.store, self._ctx.log
        if await self._adopt_lost(lease_id, index):
            result.skipped += 1  # its rebuilt record has its own deadline now
            return
        try:
            removed = await self._remover.remove_with_retries(lease_id, None, index)
        except RemovalFailed as exc:
            failures = self._failures[lease_id] = self._failures.get(lease_id, 0) + 1
            await store.postpone(lease_id, utcnow() + postpone_delay(failures, self._ctx.interval))
            self._heartbeat.failed(result)
            log.warning(
                "removal failed; will retry",
                extra={"action": "fail", "lease": lease_id, "error": str(exc)},
            )
            return
        await store.forget_deadline(lease_id)
        self._failures.pop(lease_id, None)
        if not removed:
            result.skipped += 1
            log.debug("record gone, nothing left", extra={"action": "forget", "lease": lease_id})
            return
        names = _names(removed)
        await store.emit(EventType.REAPED, lease_id, "", f"orphan container {names} removed")
        self._heartbeat.reaped(result)
        log.info(
            "reaped orphan (record gone)",
            extra={"action": "orphan", "lease": lease_id, "container": names},
        )

    async def _mark_failed(self, lease: Lease, reason: str, result: PassResult) -> None:
        """Record the failure on the lease, then retry it later (it stays in the deadlines)."""
        message = f"reap failed: {reason}"
        failures = self._failures[lease.id] = self._failures.get(lease.id, 0) + 1

        def mutate(current: Lease) -> Lease:
            if current.status is LeaseStatus.FAILED:
                return current.model_copy(update={"error": message, "failure": FailureKind.REAP})
            return current.transition(LeaseStatus.FAILED, error=message, failure=FailureKind.REAP)

        already = lease.status is LeaseStatus.FAILED
        # Closed meanwhile by someone else: the postpone below is harmless (XX).
        with contextlib.suppress(IllegalTransition, LeaseNotFound):
            await self._ctx.store.update(
                lease.id, mutate, event=None if already else EventType.FAILED, detail=reason
            )
        delay = postpone_delay(failures, self._ctx.interval)
        # After the update: it re-wrote the deadline entry with the lease's own deadline.
        await self._ctx.store.postpone(lease.id, utcnow() + delay)
        self._heartbeat.failed(result)
        self._ctx.log.warning(
            "reap failed; will retry",
            extra={
                "action": "fail",
                "lease": lease.id,
                "owner": lease.owner,
                "container": short(lease.docker_id) if lease.docker_id else None,
                "error": reason,
                "retry_in": round(delay.total_seconds(), 3),
                "failures": failures,
            },
        )

    async def _reap_dry(self, lease_id: str, result: PassResult, index: LabelIndex) -> None:
        """What reaping would do, logged and counted; nothing written, nothing removed."""
        lease = await self._ctx.store.get(lease_id)
        now = utcnow()
        if lease is None:
            found = await index.containers_of(lease_id, -math.inf)
            result.reaped += 1 if found else 0
            result.skipped += 0 if found else 1
            self._ctx.log.info(
                "would remove containers of a lost record",
                extra={
                    "action": "would-orphan",
                    "lease": lease_id,
                    "container": ",".join(short(c) for c in found) or None,
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
        self._ctx.log.info(
            "would reap",
            extra={
                "action": "would-reap",
                "lease": lease.id,
                "owner": lease.owner,
                "status": lease.status.value,
                "container": ",".join(short(c) for c in ids) or None,
                "overdue": round((now - lease.expires_at).total_seconds(), 3),
            },
        )

    # --- outages: the engine away, Redis refusing writes, records lost ----------------------

    def _engine_unreachable(self, lease_id: str, exc: EngineUnavailable) -> None:
        """Not this lease's failure: it stays due, unmarked, and the loop waits for the engine."""
        first = not self._ctx.engine_down
        self._ctx.engine_down = True
        log = self._ctx.log.warning if first else self._ctx.log.debug
        log(
            "engine unreachable; the lease waits for it",
            extra={"action": "engine-down", "lease": lease_id, "error": one_line(exc)},
        )

    async def _reap_refused(self, lease_id: str, result: PassResult, index: LabelIndex) -> None:
        """Redis reads but refuses writes (no claim, no close): removal is idempotent, so a due
        lease's containers are removed anyway; its record is closed once Redis writes again
        (the lease stays due, and :attr:`unclosed` keeps what was removed)."""
        log = self._ctx.log
        try:
            lease = await self._ctx.store.get(lease_id)
            if lease is None or lease.status.is_terminal or lease.expires_at > utcnow():
                result.skipped += 1
                return
            if lease_id in self.unclosed:
                return  # removed already: the close waits for Redis
            removed = await self._remover.remove_with_retries(lease_id, lease.docker_id, index)
        except (RemovalFailed, StoreError, EngineError, TimeoutError) as exc:
            if isinstance(exc, EngineUnavailable):
                self._heartbeat.failed(result)
                self._engine_unreachable(lease_id, exc)
                return
            self._heartbeat.failed(result)
            log.warning(
                "could not handle due lease; will retry",
                extra={"action": "error", "lease": lease_id, "error": one_line(exc)},
            )
            return
        self.unclosed[lease_id] = removed
        log.warning(
            "removed while Redis refuses writes; the record is closed once it accepts them",
            extra={
                "action": "reap-unclaimed",
                "lease": lease_id,
                "owner": lease.owner,
                "container": _names(removed) or None,
                "lag": round((utcnow() - lease.expires_at).total_seconds(), 3),
            },
        )

    async def _adopt_lost(self, lease_id: str, index: LabelIndex) -> bool:
        """A record lost on its own (eviction): rebuild it from its container's labels."""
        if self.adopt is None:
            return False
        for info in await index.infos_of(lease_id):
            if await self.adopt(info):
                return True
        return False
