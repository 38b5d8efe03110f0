"""Adoption: when Redis loses lease records, rebuild them from the containers' labels.

Redis can lose its data: ``FLUSHALL``, a restart without persistence, eviction under
``maxmemory``. The containers still run, and their labels (see :mod:`containerlease_tui.labels`)
say whose they are, what they were made from and until when. Without their records they would
vanish from ``ls``, ``rm`` and the quotas while they run, and an extension (which lives only in
Redis: Docker labels are immutable) would be cut back to the label deadline.

* **Detection** (:meth:`Adopter.watch`). Each data set carries an *epoch*, a random token written
  once (``Store.epoch``). A reaper reads it every :data:`EPOCH_CHECK` seconds; when it is gone
  (or another reaper wrote a new one), the data was lost: every labelled container of this
  installation without a record is adopted at once, not at the next sweep. Lost single records
  (eviction) are adopted by the sweep (and by the deadline path: a deadline without a record).
* **The adopted record** is ``running`` (``stopped`` for a stopped container) with the labels'
  owner, name, image and creation time, and the deadline ``max(label deadline, detection +
  [reaper] grace)``: never earlier than ``grace`` after the loss was noticed, so an owner whose
  extension was lost has time to extend again; past that it is reaped like any lease, on time.
  It counts against the quotas (not the budget: nothing is charged twice) and its owner gets an
  ``expiring`` event saying what happened.
* Adoption is idempotent: the insert refuses an id that exists, so two reapers adopting at once
  write one record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Final

from pydantic import ValidationError

from containerlease_tui.engine import ContainerInfo, EngineError
from containerlease_tui.labels import (
    LABEL_CREATED,
    LABEL_EXPIRES,
    LABEL_IMAGE,
    LABEL_LEASE,
    LABEL_NAME,
    LABEL_OWNER,
    format_label_time,
    lease_of,
    parse_label_deadline,
)
from containerlease_tui.models import EventType, Lease, LeaseStatus, Resources, utcnow
from containerlease_tui.reaper.context import ReaperContext
from containerlease_tui.reaper.logs import one_line, short
from containerlease_tui.store import NameTaken, StoreError

# Seconds between two reads of the epoch: a loss is noticed within about this long.
EPOCH_CHECK: Final = 1.0
# An insert refused for quotas must never stop an adoption: the container exists anyway.
_NO_LIMIT: Final = 1_000_000_000


class Adopter:
    """Notices a loss of Redis's data and rebuilds the lost records from container labels."""

    def __init__(self, ctx: ReaperContext, wake: Callable[[], None]) -> None:
        self._ctx = ctx
        self._wake = wake
        self._epoch: str | None = None
        self._lock = asyncio.Lock()
        self.adopted = 0
        """Records rebuilt by this reaper."""
        self.losses = 0
        """Losses of Redis's data this reaper noticed."""

    # --- detection ---------------------------------------------------------------------------

    async def watch(self) -> None:
        """Read the epoch every :data:`EPOCH_CHECK` s until cancelled; adopt on a loss."""
        failing = False
        while True:
            try:
                await self.check()
                failing = False
            except (StoreError, EngineError, TimeoutError) as exc:
                if not failing:
                    self._ctx.log.debug(
                        "epoch check failed", extra={"action": "epoch", "error": one_line(exc)}
                    )
                failing = True
            await asyncio.sleep(EPOCH_CHECK)

    async def check(self) -> int:
        """Read (or write) the epoch; adopt if the data was lost. Records adopted."""
        async with asyncio.timeout(max(10.0, 2 * self._ctx.settings.redis.socket_timeout)):
            token, created = await self._ctx.store.epoch()
        if self._epoch == token:
            return 0
        first = self._epoch is None
        if first and not created:
            self._epoch = token  # the data set this reaper starts with
            return 0
        detected = utcnow()
        if not first:
            self.losses += 1
            self._ctx.log.warning(
                "Redis lost its data: adopting labelled containers",
                extra={"action": "data-lost", "epoch": token},
            )
        count = await self.adopt_all(detected)
        self._epoch = token  # only once adopted: a failure above is retried at the next check
        if count:
            self._wake()
        return count

    # --- adoption ----------------------------------------------------------------------------

    async def adopt_all(self, detected: datetime) -> int:
        """Adopt every labelled container of this installation that has no record."""
        ctx = self._ctx
        containers = await ctx.engine.list_leased(instance=ctx.prefix)
        ours = [c for c in containers if lease_of(c.labels, ctx.prefix)]
        if not ours:
            return 0
        ids = sorted({c.labels[LABEL_LEASE] for c in ours})
        known = {lease.id for lease in await ctx.store.get_many(ids)}
        count = 0
        seen: set[str] = set()
        for info in ours:
            lease_id = info.labels[LABEL_LEASE]
            if lease_id in known or lease_id in seen:
                continue
            seen.add(lease_id)
            if await self.adopt(info, detected):
                count += 1
        return count

    async def adopt(self, info: ContainerInfo, detected: datetime | None = None) -> bool:
        """Rebuild the record of ``info``'s lease (True: it has one now, by us or another)."""
        ctx = self._ctx
        detected = detected or utcnow()
        lease = self.record_for(info, detected)
        if lease is None:
            return False
        fields = {
            "lease": lease.id,
            "owner": lease.owner,
            "container": short(info.id),
            "expires_at": lease.expires_at.isoformat(),
        }
        if ctx.dry_run:
            ctx.log.info("would adopt", extra={"action": "would-adopt", **fields})
            return True
        async with self._lock:
            if await ctx.store.get(lease.id) is not None:
                return True
            detail = (
                f"adopted from container {short(info.id)}: Redis had lost its record "
                f"(the deadline is at least {ctx.settings.reaper.grace} after the loss)"
            )
            try:
                try:
                    await ctx.store.insert(
                        lease, max_per_user=_NO_LIMIT, max_total=_NO_LIMIT, detail=detail
                    )
                except NameTaken:
                    lease = lease.model_copy(update={"name": lease.id})
                    await ctx.store.insert(
                        lease, max_per_user=_NO_LIMIT, max_total=_NO_LIMIT, detail=detail
                    )
            except StoreError:
                if await ctx.store.get(lease.id) is not None:
                    return True  # another reaper adopted it first
                raise
            until = format_label_time(lease.expires_at)
            await ctx.store.emit(
                EventType.EXPIRING,
                lease,
                detail=f"Redis lost this lease's record; rebuilt from its container, it now ends "
                f"at {until}: extend it to keep it longer",
            )
        self.adopted += 1
        ctx.log.warning("adopted lost lease", extra={"action": "adopt", **fields})
        return True

    def record_for(self, info: ContainerInfo, detected: datetime) -> Lease | None:
        """The record a labelled container stands for, or None (its labels are unusable)."""
        ctx, labels = self._ctx, info.labels
        lease_id = labels.get(LABEL_LEASE, "")
        label_deadline = parse_label_deadline(labels.get(LABEL_EXPIRES))
        floor = detected + ctx.settings.reaper.grace
        deadline = floor if label_deadline is None else max(label_deadline, floor)
        image_name = labels.get(LABEL_IMAGE) or "unknown"
        image = ctx.settings.images.get(image_name)
        created = parse_label_deadline(labels.get(LABEL_CREATED)) or info.created_at or detected
        try:
            return Lease(
                id=lease_id,
                name=labels.get(LABEL_NAME) or lease_id,
                owner=labels.get(LABEL_OWNER, ""),
                image=image_name,
                image_ref=image.ref if image is not None else "unknown",
                resources=(
                    Resources(cpus=image.cpus, memory=image.memory, pids=image.pids)
                    if image is not None
                    else Resources()
                ),
                status=LeaseStatus.RUNNING if info.running else LeaseStatus.STOPPED,
                docker_id=info.id,
                created_at=min(created, deadline),
                expires_at=deadline,
                hourly_rate=image.hourly_rate if image is not None else Decimal(0),
            )
        except ValidationError as exc:
            ctx.log.warning(
                "labelled container cannot be adopted",
                extra={
                    "action": "adopt",
                    "lease": lease_id[:40],
                    "container": short(info.id),
                    "error": one_line(exc),
                },
            )
            return None
