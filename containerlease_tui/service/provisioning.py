"""Provisioning: submit a pending lease, then pull, create and start its container.

Provisioning writes the pending lease first (counted against quotas in the same atomic step),
then records each step as it happens. Whatever fails, the lease ends ``failed`` with a reason a
person understands and anything half-made is removed; a crash between two steps leaves the lease
record and/or a container carrying its labels, which is all the reaper needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from containerlease_tui import channel
from containerlease_tui.durations import format_duration
from containerlease_tui.engine import (
    ContainerSpec,
    EngineError,
    ImageUnavailable,
)
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.errors import (
    InvalidInput,
    ProvisionFailed,
)
from containerlease_tui.labels import (
    labels_for,
)
from containerlease_tui.models import (
    EventType,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseStatus,
    utcnow,
)
from containerlease_tui.policy import (
    ProvisionRequest,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.store import (
    StoreError,
)
from containerlease_tui.store.events import acting_as

if TYPE_CHECKING:
    pass

from containerlease_tui.service.base import translated
from containerlease_tui.service.volumes import VolumeOps

KEEPALIVE_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
# While a process provisions a lease it refreshes a key this often, with this TTL; a lease
# stuck before ``running`` without that key is finished off by the reaper's sweep.
PROVISION_BEAT = timedelta(seconds=2)
PROVISION_BEAT_TTL = timedelta(seconds=8)


class ProvisioningOps(VolumeOps):
    """Submit, provision and complete leases; fail them cleanly."""

    async def submit(self, req: ProvisionRequest) -> Lease:
        """Write the pending lease (quota-checked, atomic) and return it; nothing runs yet."""
        lease = self.check(req)
        await self._check_volumes(lease)
        with translated(), acting_as(self.user):
            limits = self.settings.limits
            await self.store.insert(
                lease,
                max_per_user=limits.max_leases_per_user,
                max_total=limits.max_leases_total,
                budget_hours=limits.daily_budget_hours,
                detail=f"{lease.image} for {format_duration(lease.lifetime)}",
            )
        return lease

    async def provision(
        self,
        req: ProvisionRequest,
        *,
        on_progress: Callable[[PullProgress], None] | None = None,
        on_status: Callable[[Lease], None] | None = None,
    ) -> Lease:
        """Submit and run a lease to ``running``; raises :class:`ProvisionFailed` on failure."""
        lease = await self.submit(req)
        if on_status:
            on_status(lease)
        return await self.complete(lease.id, on_progress=on_progress, on_status=on_status)

    async def complete(
        self,
        lease_id: str,
        *,
        on_progress: Callable[[PullProgress], None] | None = None,
        on_status: Callable[[Lease], None] | None = None,
    ) -> Lease:
        """Drive a pending lease to running: pull if needed, create, start; each step recorded.

        Only the owner (or an admin) may, and only while the lease is ``pending``: anything
        else is refused without touching the lease or its container.
        """
        with acting_as(self.user):
            return await self._complete(lease_id, on_progress=on_progress, on_status=on_status)

    async def _complete(
        self,
        lease_id: str,
        *,
        on_progress: Callable[[PullProgress], None] | None,
        on_status: Callable[[Lease], None] | None,
    ) -> Lease:
        lease = await self._get(lease_id)
        self._authorize(lease, "provision")
        with translated():
            # One provisioner per lease: a second one must not touch the first one's container.
            if not await self.store.provisioning_start(lease_id, PROVISION_BEAT_TTL):
                raise InvalidInput(f"lease {lease.id} is already being provisioned", "lease")
            lease = await self._get(lease_id)
            if lease.status is not LeaseStatus.PENDING:
                await self.store.provisioning_done(lease_id)
                raise InvalidInput(
                    f"lease {lease.id} is {lease.status.value}, not pending", "lease"
                )
        cid: str | None = None
        beat = asyncio.create_task(self._provisioning_beat(lease_id), name=f"beat-{lease_id}")

        async def step(target: LeaseStatus, event: EventType, detail: str = "") -> None:
            nonlocal lease
            lease = await self.store.update(
                lease_id, lambda x: x.transition(target), event=event, detail=detail
            )
            if on_status:
                on_status(lease)

        try:
            if not await self.engine.image_seen(lease.image_ref):
                await step(LeaseStatus.PULLING, EventType.PULLING, lease.image_ref)
                await self.engine.ensure_image(lease.image_ref, on_progress)
            await step(LeaseStatus.CREATING, EventType.CREATING)
            await self._prepare_volumes(lease)
            if lease.channel:
                await self._sweep_channels()
                channel.prepare(self.settings.docker.channels(), lease.id)
            spec = self._spec(lease)
            try:
                cid = await self.engine.create(spec)
            except ImageUnavailable:
                # Seen a moment ago, removed since: pull it once more, then create.
                await self.engine.ensure_image(lease.image_ref, on_progress)
                cid = await self.engine.create(spec)
            # From here the container carries our labels: a crash leaves it findable.
            lease = await self.store.update(
                lease_id, lambda x: x.model_copy(update={"docker_id": cid})
            )
            await self.engine.start(cid)
            lease = await self._record_ports(lease, cid)
            await step(LeaseStatus.RUNNING, EventType.RUNNING, cid[:12])
            return lease
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(lease_id, cid, "provisioning was interrupted"))
            raise
        except Exception as exc:  # whatever it was, nothing half-made may stay behind
            reason = self._reason(exc)
            failed = await asyncio.shield(self._fail(lease_id, cid, reason))
            raise ProvisionFailed(reason, failed) from None
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            with contextlib.suppress(StoreError):
                await self.store.provisioning_done(lease_id)

    async def _provisioning_beat(self, lease_id: str) -> None:
        """Keep the "being provisioned" key alive, so the sweep leaves this lease alone."""
        while True:
            await asyncio.sleep(PROVISION_BEAT.total_seconds())
            with contextlib.suppress(StoreError):
                await self.store.provisioning_beat(lease_id, PROVISION_BEAT_TTL)

    @staticmethod
    def _reason(exc: BaseException) -> str:
        if isinstance(exc, IllegalTransition):
            return "the lease was closed while it was being provisioned"
        if isinstance(exc, EngineError | StoreError):
            return str(exc)
        # One line: the reason becomes the lease's error and the CLI's error line.
        return f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    async def _fail(self, lease_id: str, cid: str | None, reason: str) -> Lease | None:
        """Remove whatever was made and mark the lease failed (unless it was closed already)."""
        cleaned = await self._remove_containers(lease_id, cid)
        current = await self._get_quietly(lease_id)
        try:
            lease = await self.store.update(
                lease_id,
                lambda x: x.transition(
                    LeaseStatus.FAILED, error=reason, failure=FailureKind.PROVISION
                ),
                event=EventType.FAILED,
                detail=reason,
                # A failed provision books nothing: its hours go back to the budget.
                charge=self._refund(current, current.lifetime) if current else None,
            )
        except IllegalTransition:
            return await self.store.get(lease_id)
        except StoreError:
            return None  # Redis is gone too: the record stays as it was; the reaper finishes it
        if cleaned:
            with contextlib.suppress(StoreError):
                await self.store.forget_deadline(lease_id)
        return lease

    async def _get_quietly(self, lease_id: str) -> Lease | None:
        try:
            return await self.store.get(lease_id)
        except StoreError:
            return None

    async def _sweep_channels(self) -> None:
        """Remove the channel folders here whose lease is over: the folder goes with the lease
        when this machine's user removes it, but a lease reaped by someone else's reaper (in
        direct mode, another user's) leaves its folder here. A folder whose record is gone is
        removed only once no lease could still be running (older than ``max_lifetime``): a
        lost record is adopted, and its container keeps its channel."""
        root = self.settings.docker.channels()
        now = utcnow().timestamp()
        for lease_id, made in channel.folders(root).items():
            try:
                record = await self.store.get(lease_id)
            except StoreError:
                continue  # unreadable or unreachable: leave it
            if record is None:
                if now - made < self.settings.limits.max_lifetime.total_seconds():
                    continue
            elif not record.status.is_terminal:
                continue
            channel.discard(root, lease_id)

    def _spec(self, lease: Lease) -> ContainerSpec:
        """The container to create, checked again now: time may have passed since submit."""
        spec = self.settings.images.get(lease.image)
        if spec is None:
            raise EngineError(f"image {lease.image} is no longer in the catalog")
        try:
            # Resolved again and handed to the engine resolved, so a symlink swapped in under
            # an allowed folder since the lease was submitted cannot redirect the mount.
            binds = self.policy.check_binds(spec)
        except InvalidInput as exc:
            raise EngineError(str(exc)) from None  # complete() fails the lease, makes nothing
        env = dict(lease.env)
        if lease.channel:
            binds = [*binds, f"{self._channel_folder(lease.id)}:{channel.MOUNT}:rw"]
            env[channel.ENV_VAR] = channel.SOCKET_PATH
        return ContainerSpec(
            name=lease.container_name,
            image_ref=lease.image_ref,
            cmd=lease.cmd or spec.cmd or KEEPALIVE_CMD,
            env=env,
            labels=labels_for(lease, self.settings.redis.key_prefix),
            cpus=lease.resources.cpus,
            memory=lease.resources.memory,
            pids=lease.resources.pids,
            cap_add=(
                spec.cap_add if spec.cap_add is not None else self.settings.security.cap_allowlist
            ),
            binds=binds,
            network=self.settings.docker.network,
            init=spec.init,
            no_new_privileges=spec.no_new_privileges,
            ports=list(lease.ports),
            publish_address=self.settings.docker.publish_address,
            workdir=lease.workdir or spec.workdir,
            volumes={
                self._volume_name(lease.owner, name): path for name, path in lease.volumes.items()
            },
        )
