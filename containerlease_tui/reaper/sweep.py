"""The reconciliation sweep: Docker's labelled containers compared with Redis's records.

Level-triggered, every ``sweep_interval``: adopts containers whose record is gone (see
``adoption``), removes orphans (containers whose lease is closed, or whose labels cannot be
adopted, once their label deadline plus ``grace`` has passed), closes records whose container
vanished, re-indexes overdue leases missing from the deadline set, and fails provisions whose
process died. Containers without both our lease and instance labels are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_LEASE,
    LABEL_OWNER,
    ContainerInfo,
    EngineError,
)
from containerlease_tui.labels import lease_of, parse_label_deadline
from containerlease_tui.models import (
    EventType,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseStatus,
    lease_hours,
    utcnow,
)
from containerlease_tui.reaper.claims import Claims
from containerlease_tui.reaper.context import Changed, PassResult, ReaperContext
from containerlease_tui.reaper.heartbeat import Heartbeat
from containerlease_tui.reaper.logs import crash_text, one_line, short
from containerlease_tui.reaper.removal import LabelIndex, RemovalFailed, Remover
from containerlease_tui.reaper.status import EPOCH
from containerlease_tui.store import (
    Charge,
    LeaseBusy,
    LeaseNotFound,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)

# Containers created this close to the start of a sweep are left to the next one.
SWEEP_YOUNG: Final = timedelta(seconds=1)
# A lease still short of ``running`` this long after its creation, with no live provisioner
# (see ``LeaseService.complete``), was abandoned by a crashed process: the sweep fails it.
STALLED_AFTER: Final = timedelta(seconds=15)
_PROVISIONING: Final = frozenset({LeaseStatus.PENDING, LeaseStatus.PULLING, LeaseStatus.CREATING})
_FAR_FUTURE: Final = datetime(9999, 1, 1, tzinfo=UTC)


def _stalled_after() -> timedelta:
    # Read through the package at call time: tests shorten it there with monkeypatch.setattr.
    from containerlease_tui import reaper

    return reaper.STALLED_AFTER


class Sweeper:
    """Runs the sweep: on its own schedule in the background (``run``), or inline (``run_once``)."""

    def __init__(
        self, ctx: ReaperContext, claims: Claims, heartbeat: Heartbeat, remover: Remover
    ) -> None:
        self._ctx = ctx
        self._claims = claims
        self._heartbeat = heartbeat
        self._remover = remover
        self.task: asyncio.Task[None] | None = None
        self._next = -math.inf  # monotonic
        self.adopt: Callable[[ContainerInfo], Awaitable[bool]] | None = None
        """Rebuilds a lost record from a container's labels (set by the reaper)."""

    # --- schedule ----------------------------------------------------------------------------

    def reset(self) -> None:
        """A new run sweeps at its first tick."""
        self._next = -math.inf

    def start_if_due(self) -> None:
        """Start a background sweep if one is due and none is running."""
        if time.monotonic() < self._next or (self.task is not None and not self.task.done()):
            return
        self._next = time.monotonic() + self._ctx.settings.reaper.sweep_interval.total_seconds()
        self.task = asyncio.create_task(self._sweep_quietly(), name="reaper-sweep")

    def seconds_until_due(self) -> float:
        return self._next - time.monotonic()

    async def _sweep_quietly(self) -> None:
        try:
            await self.sweep(PassResult(dry_run=self._ctx.dry_run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._ctx.log.error(
                "unexpected error in sweep",
                exc_info=exc,
                extra={"action": "sweep", "error": crash_text(exc)},
            )

    # --- the sweep ---------------------------------------------------------------------------

    async def sweep(self, result: PassResult) -> None:
        """Compare Docker's containers with Redis (level-triggered); log, never raise on
        Redis or Docker trouble."""
        ctx = self._ctx
        started = utcnow()
        try:
            containers = await ctx.engine.list_leased(instance=ctx.prefix)
        except EngineError as exc:
            ctx.log.warning("sweep skipped", extra={"action": "sweep", "error": one_line(exc)})
            return
        ours = [c for c in containers if lease_of(c.labels, ctx.prefix)]
        try:
            lease_ids = sorted({c.labels[LABEL_LEASE] for c in ours})
            found = await ctx.store.get_many(lease_ids)
            records = {lease.id: lease for lease in found}
            for bad in found.skipped:  # unreadable, not gone: never an orphan
                ctx.note_unreadable(bad)
            scheduled = {
                lease_id for lease_id, _ in await ctx.store.deadlines_between(EPOCH, _FAR_FUTURE)
            }
            for info in ours:
                if ctx.stopping():
                    return
                if info.labels[LABEL_LEASE] in found.skipped_ids:
                    continue
                await self._sweep_container(info, records, scheduled, started, result)
            await self._close_vanished(scheduled, records, {c.id for c in containers}, result)
            await self._fail_stalled(result)
        except (StoreError, EngineError) as exc:
            ctx.log.warning("sweep cut short", extra={"action": "sweep", "error": one_line(exc)})

    # --- containers: orphans and overdue leases ----------------------------------------------

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
        if lease is None and await self._adopted(info):
            return
        now = utcnow()
        if lease is not None and not lease.status.is_terminal:
            if lease.expires_at <= now and lease_id not in scheduled:
                await self._reindex(lease, info)
            return
        deadline = parse_label_deadline(info.labels.get(LABEL_EXPIRES))
        if lease is not None:
            # A closed record is authoritative: the lease ended, whatever the label says.
            ended = lease.ended_at or lease.expires_at
            deadline = ended if deadline is None else min(deadline, ended)
        owner = info.labels.get(LABEL_OWNER, lease.owner if lease else "")
        fields = {"lease": lease_id, "owner": owner, "container": short(info.id)}
        if deadline is None:
            self._ctx.log.warning(
                "labelled container without a deadline left alone",
                extra={"action": "sweep", **fields},
            )
            return
        if now < deadline + self._ctx.settings.reaper.grace:
            return
        if info.created_at is not None and info.created_at >= started - SWEEP_YOUNG:
            return  # created as the sweep began (Docker's list has 1 s resolution): next sweep
        why = "record gone" if lease is None else f"lease {lease.status.value}"
        if self._ctx.dry_run:
            result.swept += 1
            self._ctx.log.info(
                "would remove orphan", extra={"action": "would-orphan", "reason": why, **fields}
            )
            return
        await self._remove_orphan(info, lease, why, fields, result)

    async def _reindex(self, lease: Lease, info: ContainerInfo) -> None:
        """Overdue but not in the deadline set: re-index it; the deadline path reaps it."""
        fields = {"lease": lease.id, "owner": lease.owner, "container": short(info.id)}
        if self._ctx.dry_run:
            self._ctx.log.info("would re-schedule", extra={"action": "would-reindex", **fields})
            return
        with contextlib.suppress(LeaseNotFound, LeaseBusy):  # gone, or busy: the next sweep
            await self._ctx.store.reindex(lease.id)
            self._ctx.log.info("re-scheduled overdue lease", extra={"action": "reindex", **fields})

    async def _remove_orphan(
        self,
        info: ContainerInfo,
        lease: Lease | None,
        why: str,
        fields: dict[str, str],
        result: PassResult,
    ) -> None:
        ctx, lease_id = self._ctx, info.labels[LABEL_LEASE]
        async with self._claims.claimed(lease_id) as held:
            if not held:
                return  # a reaper is on it right now
            try:
                if await ctx.engine.inspect(info.id) is None:
                    return  # someone else removed it meanwhile
                async with asyncio.timeout(ctx.removal_timeout):
                    removed = await ctx.engine.remove(info.id)
                if not removed:
                    ctx.log.warning(
                        "orphan still being removed", extra={"action": "orphan", **fields}
                    )
                    return
                if lease is None:
                    await ctx.store.forget_deadline(lease_id)
                await ctx.store.emit(
                    EventType.REAPED,
                    lease_id,
                    fields["owner"],
                    f"orphan container {short(info.id)} removed",
                )
                self._heartbeat.reaped(result, swept=True)
                ctx.log.info("reaped orphan", extra={"action": "orphan", "reason": why, **fields})
            except (EngineError, TimeoutError) as exc:
                ctx.log.warning(
                    "orphan removal failed",
                    extra={"action": "orphan", "error": one_line(exc), **fields},
                )

    # --- records whose container vanished ----------------------------------------------------

    async def _close_vanished(
        self,
        scheduled: set[str],
        records: dict[str, Lease],
        existing: set[str],
        result: PassResult,
    ) -> None:
        """Running/stopped leases whose container no longer exists: expired or failed."""
        missing = [lease_id for lease_id in scheduled if lease_id not in records]
        leases = list(records.values()) + await self._ctx.store.get_many(missing)
        for lease in leases:
            if self._ctx.stopping():
                return
            if (
                lease.status not in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
                or not lease.docker_id
                or lease.docker_id in existing
            ):
                continue
            if lease.id in scheduled and lease.expires_at <= utcnow():
                continue  # due: the deadline path closes it, with its `reaped` event
            try:
                if await self._ctx.engine.inspect(lease.docker_id) is not None:
                    continue  # it exists after all (created after the listing, or unlabelled)
            except EngineError as exc:
                self._ctx.log.warning(
                    "sweep inspect failed", extra={"action": "sweep", "error": str(exc)}
                )
                return
            await self._close_one_vanished(lease, result)

    async def _close_one_vanished(self, lease: Lease, result: PassResult) -> None:
        expected = lease.docker_id
        passed = lease.expires_at <= utcnow()
        fields = {"lease": lease.id, "owner": lease.owner, "container": short(expected or "")}
        if self._ctx.dry_run:
            result.swept += 1
            self._ctx.log.info(
                "would close lease whose container vanished",
                extra={"action": "would-close", "expired": passed, **fields},
            )
            return

        def mutate(current: Lease) -> Lease:
            if (
                current.status not in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
                or current.docker_id != expected
            ):
                raise Changed
            if passed:
                return current.transition(LeaseStatus.EXPIRED)
            return current.transition(
                LeaseStatus.FAILED, error="container disappeared", failure=FailureKind.VANISHED
            )

        async with self._claims.claimed(lease.id) as held:
            if not held:
                return
            try:
                await self._ctx.store.update(
                    lease.id,
                    mutate,
                    event=EventType.EXPIRED if passed else EventType.FAILED,
                    detail="container had disappeared" if passed else "container disappeared",
                )
            except (Changed, IllegalTransition, LeaseNotFound):
                return
        result.swept += 1
        self._ctx.log.info(
            "closed lease whose container vanished",
            extra={"action": "close", "status": "expired" if passed else "failed", **fields},
        )

    # --- provisions whose process died -------------------------------------------------------

    async def _fail_stalled(self, result: PassResult) -> None:
        """Leases left short of ``running`` by a provisioner that died: clean up, mark failed.

        Without this such a lease would hold its quota slot until its deadline.
        """
        store, now, stalled_after = self._ctx.store, utcnow(), _stalled_after()
        candidates = [
            lease
            for lease in await store.get_many(await store.active_ids())
            if lease.status in _PROVISIONING and now - lease.created_at > stalled_after
        ]
        if not candidates:
            return
        alive = await store.provisioning_alive([lease.id for lease in candidates])
        index = self._remover.index()
        for lease in candidates:
            if lease.id in alive or self._ctx.stopping():
                continue
            fields = {"lease": lease.id, "owner": lease.owner, "status": lease.status.value}
            if self._ctx.dry_run:
                result.swept += 1
                self._ctx.log.info(
                    "would fail stalled provision", extra={"action": "would-fail", **fields}
                )
                continue
            async with self._claims.claimed(lease.id) as held:
                if held:
                    await self._fail_one_stalled(lease, index, result, fields)

    async def _fail_one_stalled(
        self, lease: Lease, index: LabelIndex, result: PassResult, fields: dict[str, str]
    ) -> None:
        if (await self._ctx.store.provisioning_alive([lease.id])) or self._ctx.stopping():
            return  # a provisioner (re)appeared after all
        try:
            await self._remover.remove_with_retries(lease.id, lease.docker_id, index)
        except RemovalFailed as exc:
            self._ctx.log.warning(
                "stalled provision: removal failed",
                extra={"action": "stalled", "error": str(exc), **fields},
            )
            return
        reason = "provisioning stopped: the process provisioning it is gone"
        budget = self._ctx.settings.limits.daily_budget_hours
        refund = (
            Charge(lease.owner, -lease_hours(lease.lifetime), day=lease.created_at)
            if budget is not None
            else None
        )

        def mutate(current: Lease) -> Lease:
            if current.status not in _PROVISIONING:
                raise Changed
            return current.transition(
                LeaseStatus.FAILED, error=reason, failure=FailureKind.PROVISION
            )

        try:
            await self._ctx.store.update(
                lease.id, mutate, event=EventType.FAILED, detail=reason, charge=refund
            )
        except (Changed, IllegalTransition, LeaseNotFound):
            return
        result.swept += 1
        self._ctx.log.info("failed stalled provision", extra={"action": "stalled", **fields})

    # --- called by the reaper on their own schedule -------------------------------------------

    async def check_stalled(self, result: PassResult) -> None:
        """The stalled-provision check alone (the loop runs it every few seconds); logs, never
        raises on Redis or Docker trouble."""
        try:
            await self._fail_stalled(result)
        except (StoreError, EngineError, TimeoutError) as exc:
            self._ctx.log.debug(
                "stalled check failed", extra={"action": "stalled", "error": one_line(exc)}
            )

    async def _adopted(self, info: ContainerInfo) -> bool:
        """A labelled container without a record: rebuilt ("adopted") from its labels, so its
        lease is listed, counted and reaped at its (floored) deadline, not removed blind."""
        if self.adopt is None:
            return False
        try:
            return await self.adopt(info)
        except (StoreError, EngineError) as exc:
            self._ctx.log.warning(
                "adoption failed",
                extra={"action": "adopt", "container": short(info.id), "error": one_line(exc)},
            )
            # Redis away or refusing writes: leave the container to the next sweep. Anything
            # else (a record there but unreadable): the label deadline plus grace decides.
            return isinstance(exc, StoreUnavailable | StoreRefused)
