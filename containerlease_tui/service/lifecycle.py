"""Changes to a lease: extend, release, and stop/start/restart its container."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from containerlease_tui.durations import format_duration
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.errors import (
    InvalidInput,
    ServiceUnavailable,
)
from containerlease_tui.models import (
    EventType,
    Extension,
    IllegalTransition,
    Lease,
    LeaseStatus,
    lease_hours,
    utcnow,
)
from containerlease_tui.policy import (
    Action,
    plan_extension,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.store import (
    Charge,
)
from containerlease_tui.store.events import acting_as

if TYPE_CHECKING:
    pass

from containerlease_tui.service.base import ServiceBase, translated


class LifecycleOps(ServiceBase):
    """Extend and release leases; stop, start and restart their containers."""

    async def extend(self, ref: str, by: str | timedelta | None = None) -> Lease:
        """Move the deadline by ``by`` (default: the default duration), within the limits."""
        lease = await self.resolve(ref)
        self._require(lease, "extend")
        amount = self.parse_duration(by, "extension")
        limits = self.settings.limits

        def mutate(current: Lease) -> Lease:
            now = utcnow()
            new_expiry = plan_extension(current, amount, limits, now)
            ext = Extension(at=now, by=amount, by_user=self.user, new_expires_at=new_expiry)
            return current.model_copy(
                update={"expires_at": new_expiry, "extensions": [*current.extensions, ext]}
            )

        charge = None
        if limits.daily_budget_hours is not None:
            charge = Charge(lease.owner, lease_hours(amount), limits.daily_budget_hours)
        with translated(), acting_as(self.user):
            return await self.store.update(
                lease.id,
                mutate,
                event=EventType.EXTENDED,
                detail=f"by {format_duration(amount)}",
                charge=charge,
                # Refused while a reaper has claimed it: it decided on the old deadline.
                unclaimed=True,
            )

    async def release(self, ref: str) -> Lease:
        """Delete a lease: remove its container (stopped ones too) and close it."""
        lease = await self.resolve(ref)
        self._require(lease, "delete")
        with translated(), acting_as(self.user):
            if lease.docker_id:
                # Refused (NotOurs) before anything is removed: the id on record is not ours.
                await self._own(lease)
            if not await self._remove_containers(lease.id, lease.docker_id):
                raise ServiceUnavailable(
                    f"could not remove the container of {lease.id}: the Docker engine is "
                    "unreachable; the lease stays open and will be reaped at its deadline"
                )
            unused = lease.expires_at - utcnow() if lease.status.is_active else timedelta(0)
            try:
                return await self.store.update(
                    lease.id,
                    lambda x: x.transition(LeaseStatus.RELEASED),
                    event=EventType.RELEASED,
                    detail=f"by {self.user}",
                    # Released early: the hours it will not use go back to the budget.
                    charge=self._refund(lease, unused),
                )
            except IllegalTransition:
                raise InvalidInput(f"lease {lease.id} was closed meanwhile", "lease") from None

    async def _container_op(
        self,
        ref: str,
        action: Action,
        op: Callable[[str], object],
        target: LeaseStatus | None,
        event: EventType,
    ) -> Lease:
        lease = await self.resolve(ref)
        self._require(lease, action)
        assert lease.docker_id is not None  # the policy refuses a lease without a container
        with translated(), acting_as(self.user):
            await op(await self._own(lease))  # type: ignore[misc]

            def mutate(current: Lease) -> Lease:
                if target is None or current.status is target:
                    return current
                return current.transition(target)

            return await self.store.update(lease.id, mutate, event=event)

    async def stop(self, ref: str) -> Lease:
        lease = await self._container_op(
            ref, "stop", self.engine.stop, LeaseStatus.STOPPED, EventType.STOPPED
        )
        return await self._refresh_ports(lease)

    async def start(self, ref: str) -> Lease:
        lease = await self._container_op(
            ref, "start", self.engine.start, LeaseStatus.RUNNING, EventType.STARTED
        )
        return await self._refresh_ports(lease)

    async def restart(self, ref: str) -> Lease:
        lease = await self._container_op(
            ref, "restart", self.engine.restart, LeaseStatus.RUNNING, EventType.RESTARTED
        )
        return await self._refresh_ports(lease)
