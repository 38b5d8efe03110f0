"""LeaseService: the one service the CLI and the TUI are thin shells over.

Provisioning writes the pending lease first (counted against quotas in the same atomic step),
then records each step as it happens. Whatever fails, the lease ends ``failed`` with a reason a
person understands and anything half-made is removed; a crash between two steps leaves the lease
record and/or a container carrying its labels, which is all the reaper needs.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import grp
import os
import pwd
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from containerlease_tui.activity import EventFilter, visible
from containerlease_tui.archive import ArchiveError, pack, unpack
from containerlease_tui.config import ImageSpec, Settings
from containerlease_tui.durations import format_duration
from containerlease_tui.engine import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineError,
    EngineUnavailable,
    ImageUnavailable,
    LazyEngine,
)
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.engine.cleanup import remove_lease_containers
from containerlease_tui.engine.ownership import own_container
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.errors import (
    Forbidden,
    InvalidInput,
    LeaseError,
    NotFound,
    ProvisionFailed,
    QuotaError,
    ServiceUnavailable,
)
from containerlease_tui.labels import (
    LABEL_VOLUME,
    labels_for,
    owns_volume,
    volume_engine_name,
    volume_filter,
    volume_labels,
)
from containerlease_tui.models import (
    OWNER_PATTERN,
    EventType,
    Extension,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseEvent,
    LeaseStatus,
    check_volume_name,
    lease_hours,
    utcnow,
)
from containerlease_tui.policy import (
    MAX_ENV_VALUE,
    MAX_ENV_VARS,
    Action,
    LeasePolicy,
    ProvisionRequest,
    bounded_duration,
    plan_extension,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.spend import (
    Capacity,
    Outlook,
    TeamSpend,
    capacity_of,
    cost_within,
    day_start,
    team_spend,
)
from containerlease_tui.store import (
    Charge,
    EventBatch,
    LeaseBusy,
    LeaseContended,
    LeaseList,
    LeaseStore,
    NameTaken,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)
from containerlease_tui.store.events import REAPER_ACTOR, EventHistory, acting_as
from containerlease_tui.store.protocol import Store

if TYPE_CHECKING:
    from containerlease_tui.reaper.guardian import GuardianStart

__all__ = [
    "MAX_ENV_VALUE",
    "MAX_ENV_VARS",
    "ContainerState",
    "CopyReport",
    "EventBatch",
    "Forbidden",
    "HealthReport",
    "ImageRow",
    "InvalidInput",
    "LeaseError",
    "LeaseList",
    "LeasePolicy",
    "LeaseService",
    "LeaseStatusReport",
    "NotFound",
    "ProvisionFailed",
    "ProvisionRequest",
    "QuotaError",
    "ReaperOverview",
    "ServiceUnavailable",
    "VolumeRow",
    "bounded_duration",
    "current_user",
    "is_admin",
    "plan_extension",
]

KEEPALIVE_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# While a process provisions a lease it refreshes a key this often, with this TTL; a lease
# stuck before ``running`` without that key is finished off by the reaper's sweep.
PROVISION_BEAT = timedelta(seconds=2)
PROVISION_BEAT_TTL = timedelta(seconds=8)


@dataclass(frozen=True)
class ImageRow:
    """A catalog entry and whether the engine has it locally (None: engine unreachable)."""

    name: str
    spec: ImageSpec
    present: bool | None


@dataclass(frozen=True)
class LeaseStatusReport:
    """A lease with what the engine says about its container right now."""

    lease: Lease
    container: ContainerInfo | None
    stats: ContainerStats | None


@dataclass(frozen=True)
class ReaperOverview:
    """The reaper view: every live reaper, the claims held now and the next deadlines."""

    status: ReaperStatus
    claimed: builtins.list[str]
    """Due leases a reaper holds a claim on right now (it is removing them)."""
    upcoming: builtins.list[tuple[str, datetime]]
    """The next deadlines (lease id, deadline), soonest first."""
    at: datetime

    def to_public(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "alive": self.status.alive,
            "reapers": [
                {
                    "host": b.host,
                    "pid": b.pid,
                    "mode": b.mode,
                    "version": b.version,
                    "started_at": b.started_at,
                    "last_seen": b.last_seen,
                    "last_pass": b.last_pass,
                    "passes": b.passes,
                    "reaped": b.reaped,
                    "failed": b.failed,
                }
                for b in self.status.beats
            ],
            "claimed": list(self.claimed),
            "next_deadlines": [
                {"lease": lease_id, "expires_at": at.isoformat()} for lease_id, at in self.upcoming
            ],
        }


@dataclass(frozen=True)
class ContainerState:
    """What the engine says a lease's container is doing, for the shells to show.

    ``state`` is Docker's (``running``, ``exited``, ``dead``, ``created``, ``paused``,
    ``restarting``) or ``gone`` when the container no longer exists.
    """

    state: str
    exit_code: int | None = None
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")

    def describe(self) -> str:
        """``exited (1)``, ``OOM-killed (137)``, ``container gone``, ``running``."""
        if self.oom_killed:
            return "OOM-killed" + (f" ({self.exit_code})" if self.exit_code is not None else "")
        if self.state == "gone":
            return "container gone"
        if self.exit_code is not None and self.state in ("exited", "dead"):
            return f"{self.state} ({self.exit_code})"
        return self.state or "unknown"

    def trouble_for(self, lease: Lease) -> bool:
        """The record says the container runs but it does not (a stopped lease's exited
        container is what it should be)."""
        if lease.status is LeaseStatus.RUNNING:
            return not self.running
        if lease.status is LeaseStatus.STOPPED:
            return self.state == "gone"
        return False


def _container_state(info: ContainerInfo | None) -> ContainerState:
    if info is None:
        return ContainerState("gone")
    return ContainerState(info.state, info.exit_code, info.oom_killed)


@dataclass(frozen=True)
class VolumeRow:
    """One of the user's named volumes (``containerlease volumes``)."""

    name: str
    engine_name: str
    size: int | None
    """Bytes (None: the engine has not measured it)."""
    created_at: datetime | None
    last_used: datetime | None
    """Now while a lease holds it; else the end of the last lease that mounted it (that the
    records still remember)."""
    leases: tuple[str, ...]
    """Ids of the leases that hold it."""


@dataclass(frozen=True)
class CopyReport:
    """What a ``cp`` did."""

    lease: Lease
    files: int
    size: int
    names: builtins.list[str]


@dataclass(frozen=True)
class HealthReport:
    """What ``containerlease doctor`` and the TUI's status bar show."""

    redis_ok: bool
    redis_detail: str
    docker_ok: bool
    docker_detail: str


def current_user(settings: Settings | None = None) -> str:
    """The OS user acting, from the uid (``$USER`` can say anything).

    Behind a ``sudo`` rule (``[security] service_user``): when this process runs as the service
    user and ``SUDO_UID`` is set (sudo sets it itself, whatever the caller's environment held),
    the acting user is the one who ran sudo. Anywhere else ``SUDO_UID`` is ignored. An unknown
    uid is named ``uid<N>``, and so is an account whose name a lease record could not hold (see
    ``models.OWNER_PATTERN``: no controls, spaces or markup).
    """
    uid = os.getuid()
    service = settings.security.service_user if settings is not None else None
    sudo_uid = os.environ.get("SUDO_UID", "")
    if service and re.fullmatch(r"[0-9]{1,10}", sudo_uid) and int(sudo_uid) < 2**32:
        try:
            is_service = pwd.getpwnam(service).pw_uid == uid
        except KeyError:
            is_service = False
        if is_service:
            uid = int(sudo_uid)
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid{uid}"
    return name if OWNER_PATTERN.fullmatch(name) else f"uid{uid}"


def is_admin(user: str, settings: Settings) -> bool:
    """In ``[security] admins``, or a member of ``[security] admin_group``."""
    sec = settings.security
    if user in sec.admins:
        return True
    if not sec.admin_group:
        return False
    try:
        group = grp.getgrnam(sec.admin_group)
    except KeyError:
        return False
    if user in group.gr_mem:
        return True
    try:
        return pwd.getpwnam(user).pw_gid == group.gr_gid
    except KeyError:
        return False


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn store and engine errors into the service's user-facing errors."""
    try:
        yield
    except QuotaExceeded as exc:
        raise QuotaError(str(exc)) from None
    except NameTaken as exc:
        raise InvalidInput(str(exc), "name") from None
    except LeaseContended as exc:  # the record kept changing under us: nothing was done
        raise LeaseError(str(exc)) from None
    except LeaseBusy as exc:
        raise LeaseError(f"{exc}: it has expired") from None
    except (StoreUnavailable, EngineUnavailable) as exc:
        raise ServiceUnavailable(str(exc)) from None
    except (StoreError, EngineError) as exc:
        raise LeaseError(str(exc)) from None


class LeaseService:
    """Provision, extend, release and operate leases for one user."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Runtime,
        *,
        user: str | None = None,
        admin: bool | None = None,
    ) -> None:
        self.settings = settings
        self.store: Store = store
        self.engine: Runtime = engine
        self.user = user or current_user(settings)
        self.is_admin = is_admin(self.user, settings) if admin is None else admin
        self.host = socket.gethostname()
        self._policy: LeasePolicy | None = None

    @property
    def policy(self) -> LeasePolicy:
        """The rules this service enforces (pure: the TUI validates with it too).

        Made on first use and again whenever ``settings`` is replaced on a live service.
        """
        policy: LeasePolicy | None = self.__dict__.get("_policy")
        if policy is None or policy.settings is not self.settings:
            policy = self._policy = LeasePolicy(self.settings)
        return policy

    @classmethod
    def open(cls, settings: Settings, user: str | None = None) -> LeaseService:
        """The app factory: connections are made lazily, so this never blocks or fails."""
        return cls(
            settings, LeaseStore.from_settings(settings), LazyEngine(settings.docker), user=user
        )

    async def close(self) -> None:
        await self.engine.close()
        await self.store.close()

    # --- catalog and validation ------------------------------------------------------------

    async def images(self) -> builtins.list[ImageRow]:
        rows = []
        for name, spec in self.settings.images.items():
            try:
                present: bool | None = await self.engine.image_present(spec.ref)
            except EngineError:
                present = None
            rows.append(ImageRow(name, spec, present))
        return rows

    def parse_duration(self, text: str | timedelta | None, what: str = "duration") -> timedelta:
        """A duration within ``[limits]``; raises :class:`InvalidInput` naming the range."""
        return self.policy.bounded_duration(text, what)

    def check(self, req: ProvisionRequest) -> Lease:
        """Validate a request and build its pending lease; raises :class:`InvalidInput`."""
        return self.policy.pending_lease(req, owner=self.user, host=self.host)

    def estimate(self, req: ProvisionRequest) -> Decimal:
        """The cost of the whole lease, for the live estimate in the form."""
        return self.policy.estimate(req)

    def allowed(self, lease: Lease, action: Action) -> str | None:
        """None when this user may ``action`` the lease now, else the one-line reason (the
        same words the service would refuse it with)."""
        return self.policy.allowed(lease, action, self.user, self.is_admin)

    # --- provisioning ----------------------------------------------------------------------

    async def submit(self, req: ProvisionRequest) -> Lease:
        """Write the pending lease (quota-checked, atomic) and return it; nothing runs yet."""
        lease = self.check(req)
        await self._check_volumes(lease)
        with _translated(), acting_as(self.user):
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
        with _translated():
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

    def _refund(self, lease: Lease, span: timedelta) -> Charge | None:
        """Give ``span`` of lease-hours back to the owner's daily budget (if there is one)."""
        if self.settings.limits.daily_budget_hours is None or span <= timedelta(0):
            return None
        return Charge(lease.owner, -lease_hours(span), day=lease.created_at)

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

    async def _remove_containers(self, lease_id: str, cid: str | None) -> bool:
        """Remove the lease's container by id and by label; True when none is left."""
        try:
            await remove_lease_containers(
                self.engine, lease_id, cid, self.settings.redis.key_prefix
            )
            return True
        except EngineError:
            return False

    async def _get_quietly(self, lease_id: str) -> Lease | None:
        try:
            return await self.store.get(lease_id)
        except StoreError:
            return None

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
        return ContainerSpec(
            name=lease.container_name,
            image_ref=lease.image_ref,
            cmd=lease.cmd or spec.cmd or KEEPALIVE_CMD,
            env=lease.env,
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

    # --- lookups ---------------------------------------------------------------------------

    async def _get(self, lease_id: str) -> Lease:
        with _translated():
            lease = await self.store.get(lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id}")
        return lease

    async def resolve(self, ref: str) -> Lease:
        """A lease by id, unique id prefix, or name (the user's own first)."""
        ref = ref.strip()
        if not _REF.fullmatch(ref):
            raise InvalidInput(f"invalid lease id or name {ref[:40]!r}", "lease")
        with _translated():
            lease = await self.store.get(ref)
            if lease is not None:
                return lease
            ids = await self.store.ids_with_prefix(ref) if len(ref) >= 2 else []
            if len(ids) == 1:
                found = await self.store.get(ids[0])
                if found is not None:
                    return found
            elif len(ids) > 1:
                raise InvalidInput(
                    f"ambiguous lease id {ref!r}: matches {', '.join(ids[:5])}"
                    + (" …" if len(ids) > 5 else ""),
                    "lease",
                )
            scopes: builtins.list[Callable[[], Awaitable[builtins.list[Lease]]]] = [
                lambda: self.store.list_owner(self.user),
                self.store.list_all,
            ]
            for scope in scopes:
                named = [x for x in await scope() if x.name == ref]
                active = [x for x in named if x.status.is_active]
                pick = active or named
                if len(pick) == 1:
                    return pick[0]
                if len(pick) > 1:
                    raise InvalidInput(
                        f"ambiguous lease name {ref!r}: use an id "
                        f"({', '.join(x.id for x in pick[:5])})",
                        "lease",
                    )
        if len(ref) < 2:
            raise InvalidInput(f"no lease named {ref!r}: a prefix needs at least 2 characters")
        raise NotFound(f"no lease matches {ref!r}")

    def _authorize(self, lease: Lease, action: str) -> None:
        self.policy.authorize(lease, action, self.user, self.is_admin)

    def _require(self, lease: Lease, action: Action) -> None:
        self.policy.require(lease, action, self.user, self.is_admin)

    async def list(self, *, all_users: bool = False) -> LeaseList:
        """The user's leases (everybody's with ``all_users``), newest first; records that cannot
        be read are left out and named in the result's ``skipped``."""
        with _translated():
            if all_users:
                return await self.store.list_all()
            return await self.store.list_owner(self.user)

    # --- changes ---------------------------------------------------------------------------

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
        with _translated(), acting_as(self.user):
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
        with _translated(), acting_as(self.user):
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

    async def _own(self, lease: Lease) -> str:
        """The full id of the lease's container, once its labels confirm it is this lease's
        (``NotOurs``, an ``EngineError``, if not); the id on record if it no longer exists
        (the action then fails as the engine says)."""
        assert lease.docker_id is not None
        full = await own_container(
            self.engine, lease.docker_id, lease.id, self.settings.redis.key_prefix
        )
        return full or lease.docker_id

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
        with _translated(), acting_as(self.user):
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

    async def status(self, ref: str) -> LeaseStatusReport:
        """The lease with its container's state and usage; the owner (or an admin) only."""
        lease = await self.resolve(ref)
        self._authorize(lease, "see the status of")
        info: ContainerInfo | None = None
        stats: ContainerStats | None = None
        if lease.docker_id:
            with _translated():
                cid = await self._own(lease)
                info = await self.engine.inspect(cid)
                if info is not None and info.running:
                    stats = await self.engine.stats(cid)
        return LeaseStatusReport(lease, info, stats)

    async def container_state(self, lease: Lease) -> ContainerState | None:
        """The real state of the lease's container right now (None: it has none yet)."""
        if not lease.docker_id:
            return None
        with _translated():
            return _container_state(await self.engine.inspect(lease.docker_id))

    async def container_states(self, leases: Sequence[Lease]) -> dict[str, ContainerState]:
        """The real state of each lease's container that the record says exists (running or
        stopped), by lease id, from one listing of the installation's containers: what the
        app's table and ``ls`` show beside the lease's own status."""
        wanted = [
            x
            for x in leases
            if x.docker_id and x.status in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
        ]
        if not wanted:
            return {}
        with _translated():
            found = await self.engine.list_leased(self.settings.redis.key_prefix)
        by_id = {info.id: info for info in found}
        out: dict[str, ContainerState] = {}
        for lease in wanted:
            assert lease.docker_id is not None
            info = by_id.get(lease.docker_id)
            if info is None:
                info = next((i for i in found if i.id.startswith(lease.docker_id)), None)
            out[lease.id] = _container_state(info)
        return out

    async def settled(
        self, lease: Lease, within: timedelta = timedelta(seconds=2)
    ) -> ContainerState | None:
        """Watch a just-started container for ``within``: the state it died in if it did
        (a command that fails at once, an OOM kill), else None. ``provision --wait`` fails
        with it instead of reporting ``running`` for a container that is already gone."""
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        while True:
            state = await self.container_state(lease)
            if state is not None and state.trouble_for(lease):
                return state
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.25)

    async def last_lines(self, lease: Lease, count: int = 10) -> builtins.list[str]:
        """The last ``count`` lines of the container's output (empty when it has none)."""
        lines: builtins.list[str] = []
        with contextlib.suppress(LeaseError):
            async for line in self.logs(lease, follow=False, tail=count):
                lines.append(line)
        return lines[-count:]

    async def container_for(self, ref: str, action: str) -> Lease:
        """The lease behind ``ref`` if the user may ``action`` its running container."""
        lease = await self.resolve(ref)
        self._authorize(lease, action)
        if not lease.docker_id or lease.status.is_terminal:
            raise InvalidInput(f"lease {lease.id} has no container ({lease.status.value})", "lease")
        return lease

    async def logs(
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        """The container's output as lines; the owner (or an admin) only."""
        self._authorize(lease, "read the logs of")
        if not lease.docker_id:
            return
        with _translated():
            cid = await self._own(lease)
            async for line in self.engine.logs(cid, follow=follow, tail=tail):
                yield line

    async def shell(self, lease: Lease, cmd: builtins.list[str] | None = None) -> int:
        self._require(lease, "shell")
        await self.check_shell(lease)
        assert lease.docker_id is not None  # the policy refuses a lease without a container
        with _translated():
            return await self.engine.shell(await self._own(lease), cmd or ["/bin/sh"])

    async def check_shell(self, lease: Lease) -> None:
        """Refuse, before anything touches the terminal, a shell in a container that is not
        running (stopped from outside, exited, removed): :class:`InvalidInput` in the CLI's
        words, ``container … is not running``."""
        self._require(lease, "shell")
        state = await self.container_state(lease)
        if state is not None and not state.running:
            short = (lease.docker_id or "")[:12]
            raise InvalidInput(f"container {short} is not running ({state.describe()})", "lease")

    async def last_event_id(self) -> str:
        """The event stream's newest id: the cursor to follow from, so nothing is missed
        between loading the leases and the first read."""
        with _translated():
            return await self.store.last_event_id()

    async def reaper_status(self) -> ReaperStatus:
        """The reapers alive for this installation (``doctor``, the app's status bar)."""
        from containerlease_tui.reaper import reaper_report

        with _translated():
            return await reaper_report(self.store)

    async def run_reaper(self, stop: asyncio.Event, *, mode: str = "in-app") -> None:
        """Run a reaper over this service's store and engine until ``stop`` is set (the
        app's in-app reaper: the shells never build one from the store and engine)."""
        from containerlease_tui.reaper import Reaper  # the reaper is not needed by most commands

        with acting_as(REAPER_ACTOR):  # this task's events are the reaper's
            await Reaper(self.settings, self.store, self.engine, mode=mode).run(stop)

    async def ensure_reaper(self) -> GuardianStart | None:
        """Make sure some reaper enforces the active leases: start the guardian if none is alive
        (what happened, for the user; None when nothing was needed or Redis cannot tell)."""
        from containerlease_tui.reaper.guardian import ensure_reaper

        try:
            return await ensure_reaper(self.settings, self.store)
        except (StoreError, OSError):
            return None

    async def events(self, after: str = "$", block_ms: int | None = 2000) -> EventBatch:
        """The next events after stream id ``after``, waiting up to ``block_ms``."""
        with _translated():
            return await self.store.follow_events(after, block_ms=block_ms)

    # --- activity, spend, capacity -----------------------------------------------------------

    def shown(
        self, events: Sequence[LeaseEvent], filt: EventFilter | None = None
    ) -> builtins.list[LeaseEvent]:
        """``events`` that match ``filt``, as this user may see them (``activity.visible``:
        another user's details redacted for a non-admin)."""
        chosen = filt.select(events) if filt is not None else builtins.list(events)
        return [visible(e, self.user, self.is_admin) for e in chosen]

    async def event_log(
        self, filt: EventFilter | None = None, *, limit: int = 1000
    ) -> EventHistory:
        """The audit trail, newest last: the last ``limit`` events (since ``filt.since``) that
        match ``filt``, with the cursor to follow from and how far back the capped stream goes."""
        with _translated():
            history = await self.store.event_history(
                filt.since if filt is not None else None, limit=limit
            )
        return replace(history, events=self.shown(history.events, filt))

    async def spend(self, now: datetime | None = None) -> TeamSpend:
        """Spend per user (everybody for an admin, else this user) and the totals."""
        now = now or utcnow()
        with _translated():
            leases = await self.store.list_all()
        return team_spend(leases, now, me=self.user, everyone=self.is_admin)

    async def outlook(self, now: datetime | None = None) -> Outlook:
        """Where this user stands before provisioning: spend and budget today, the quotas."""
        now = now or utcnow()
        limits = self.settings.limits
        with _translated():
            leases = await self.store.list_all()
            booked = (
                await self.store.budget_used(self.user, now)
                if limits.daily_budget_hours is not None
                else lease_hours(timedelta(0))
            )
        mine = [x for x in leases if x.owner == self.user]
        today = day_start(now)
        return Outlook(
            user=self.user,
            spent_today=sum((cost_within(x, today, now) for x in mine), Decimal("0.0000")),
            booked_hours=booked,
            budget_hours=limits.daily_budget_hours,
            active_mine=sum(1 for x in mine if x.status.is_active),
            max_per_user=limits.max_leases_per_user,
            active_total=sum(1 for x in leases if x.status.is_active),
            max_total=limits.max_leases_total,
        )

    async def capacity(self) -> Capacity:
        """The box's limits against what the active leases reserve (engine: ``NCPU``,
        ``MemTotal``; None when the engine cannot be asked)."""
        with _translated():
            leases = [x for x in await self.store.list_all() if x.status.is_active]
        try:
            host = await self.engine.host_info()
            cpus, memory = host.cpus or None, host.memory or None
        except EngineError:
            cpus = memory = None
        return capacity_of(leases, self.settings.limits.max_leases_total, cpus, memory)

    async def reaper_overview(
        self, now: datetime | None = None, *, upcoming: int = 10
    ) -> ReaperOverview:
        """Every live reaper, the claims held now on due leases, and the next deadlines."""
        now = now or utcnow()
        with _translated():
            status = await self.reaper_status()
            due = await self.store.due(now)
            claimed = sorted(await self.store.claimed(due))
            soon = await self.store.deadlines_between(now, now + timedelta(days=7))
        return ReaperOverview(status, claimed, soon[:upcoming], now)

    async def health(self) -> HealthReport:
        try:
            await self.store.ping()
            redis_ok, redis_detail = True, "connected"
        except StoreError as exc:
            redis_ok, redis_detail = False, str(exc)
        try:
            version = await self.engine.ping()
            docker_ok, docker_detail = True, f"engine {version}"
        except EngineError as exc:
            docker_ok, docker_detail = False, str(exc)
        return HealthReport(redis_ok, redis_detail, docker_ok, docker_detail)

    async def exec(self, lease: Lease, cmd: Sequence[str]) -> ExecResult:
        """Run ``cmd`` in the lease's container, no terminal (``containerlease exec``)."""
        self._authorize(lease, "run a command in")
        if not lease.docker_id:
            raise InvalidInput(f"lease {lease.id} has no container")
        if not cmd:
            raise InvalidInput("exec needs a command to run")
        with _translated():
            return await self.engine.exec(await self._own(lease), cmd)

    # --- published ports -------------------------------------------------------------------

    async def _record_ports(self, lease: Lease, cid: str) -> Lease:
        """Write where the engine published the lease's ports (it picks them at start)."""
        if not lease.ports:
            return lease
        info = await self.engine.inspect(cid)
        found = info.ports if info is not None else {}
        mapping: dict[str, str | None] = {port: found.get(port) for port in lease.ports}
        if mapping == lease.ports:
            return lease
        return await self.store.update(
            lease.id, lambda x: x.model_copy(update={"ports": {**x.ports, **mapping}})
        )

    async def _refresh_ports(self, lease: Lease) -> Lease:
        """After stop, start or restart: the mapping as it is now (a stopped container has
        none; a started one may have new host ports)."""
        if not lease.ports or not lease.docker_id:
            return lease
        with _translated():
            return await self._record_ports(lease, lease.docker_id)

    # --- named volumes ---------------------------------------------------------------------

    def _volume_name(self, owner: str, name: str) -> str:
        return volume_engine_name(self.settings.redis.key_prefix, owner, name)

    async def _check_volumes(self, lease: Lease) -> None:
        """Before a lease is recorded: each volume it names is its owner's or does not exist
        yet, and the new ones fit in ``max_volumes_per_user``."""
        if not lease.volumes:
            return
        prefix = self.settings.redis.key_prefix
        new = 0
        with _translated():
            for name in lease.volumes:
                engine_name = self._volume_name(lease.owner, name)
                found = await self.engine.inspect_volume(engine_name)
                if found is None:
                    new += 1
                elif not owns_volume(engine_name, found.labels, prefix, lease.owner):
                    raise InvalidInput(
                        f"volume {name} cannot be used: a volume of that name exists and is not "
                        "labelled as yours (ask an admin)",
                        "volumes",
                    )
            if new:
                owned = await self.engine.list_volumes(volume_filter(prefix, lease.owner))
                limit = self.settings.limits.max_volumes_per_user
                if len(owned) + new > limit:
                    raise QuotaError(
                        f"volume limit reached: you have {len(owned)} of {limit} volumes "
                        "(remove one with `containerlease volume rm NAME`)"
                    )

    async def _prepare_volumes(self, lease: Lease) -> None:
        """Create the lease's volumes (or find them) and check, from the engine's own answer,
        that each is its owner's: a volume someone made meanwhile under that name is refused."""
        prefix = self.settings.redis.key_prefix
        for name in lease.volumes:
            engine_name = self._volume_name(lease.owner, name)
            info = await self.engine.ensure_volume(
                engine_name, volume_labels(prefix, lease.owner, name)
            )
            if not owns_volume(engine_name, info.labels, prefix, lease.owner):
                raise EngineError(f"volume {name} is not labelled as {lease.owner}'s: refused")

    async def volumes(self) -> builtins.list[VolumeRow]:
        """This user's named volumes: size, last use, the leases that hold them."""
        prefix = self.settings.redis.key_prefix
        with _translated():
            found = await self.engine.list_volumes(volume_filter(prefix, self.user))
            leases = await self.store.list_owner(self.user)
        by_container = {x.docker_id: x for x in leases if x.docker_id}
        now = utcnow()
        rows: builtins.list[VolumeRow] = []
        for info in found:
            if not owns_volume(info.name, info.labels, prefix, self.user):
                continue
            name = info.labels[LABEL_VOLUME]
            held = sorted(
                {by_container[c].id for c in info.users if c in by_container}
                | {x.id for x in leases if x.status.is_active and name in x.volumes}
            )
            used = [
                min(x.ended_at or now, now) for x in leases if name in x.volumes and x.docker_id
            ]
            rows.append(
                VolumeRow(
                    name=name,
                    engine_name=info.name,
                    size=info.size,
                    created_at=info.created_at,
                    last_used=now if held else max(used, default=None),
                    leases=tuple(held),
                )
            )
        return sorted(rows, key=lambda r: r.name)

    async def volume_rm(self, name: str) -> str:
        """Remove this user's volume ``name`` (refused while a lease holds it); its name."""
        try:
            check_volume_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc), "volume") from None
        prefix = self.settings.redis.key_prefix
        engine_name = self._volume_name(self.user, name)
        with _translated():
            info = await self.engine.inspect_volume(engine_name)
            if info is None or not owns_volume(engine_name, info.labels, prefix, self.user):
                raise NotFound(f"you have no volume {name}")
            holders = [
                x.id
                for x in await self.store.list_owner(self.user)
                if x.status.is_active and name in x.volumes
            ]
            if info.users or holders:
                which = ", ".join(holders) or f"{len(info.users)} container(s)"
                raise InvalidInput(f"volume {name} is in use by {which}: refused", "volume")
            await self.engine.remove_volume(engine_name)
        return name

    # --- copying files ---------------------------------------------------------------------

    async def copy_in(self, ref: str, source: Path, dest: str) -> CopyReport:
        """Copy host file or folder ``source`` into folder ``dest`` of the lease's container
        (running or stopped), through the engine's archive API."""
        path = self.policy.check_copy_path(dest)
        lease = await self.container_for(ref, "copy files into")
        assert lease.docker_id is not None
        try:
            packed = await asyncio.to_thread(
                pack, source, limit=self.settings.limits.max_copy_bytes
            )
        except ArchiveError as exc:
            raise InvalidInput(str(exc), "source") from None
        with _translated():
            await self.engine.put_archive(await self._own(lease), path, packed.data)
        return CopyReport(lease, packed.files, packed.size, [source.name])

    async def copy_out(
        self,
        ref: str,
        source: str,
        dest: Path,
        on_progress: Callable[[int], None] | None = None,
    ) -> CopyReport:
        """Copy ``source`` (a file or folder) of the lease's container to host path ``dest``;
        the archive is untrusted: nothing is written outside ``dest``."""
        path = self.policy.check_copy_path(source)
        lease = await self.container_for(ref, "copy files out of")
        assert lease.docker_id is not None
        with _translated():
            data = await self.engine.get_archive(
                await self._own(lease),
                path,
                limit=self.settings.limits.max_copy_bytes,
                on_progress=on_progress,
            )
        try:
            names = await asyncio.to_thread(unpack, data, dest)
        except ArchiveError as exc:
            raise LeaseError(str(exc)) from None
        return CopyReport(lease, len(names), len(data), names)
