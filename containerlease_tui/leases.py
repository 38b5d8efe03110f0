"""LeaseService: the one service the CLI and the TUI are thin shells over.

Provisioning writes the pending lease first (counted against quotas in the same atomic step),
then records each step as it happens. Whatever fails, the lease ends ``failed`` with a reason a
person understands and anything half-made is removed; a crash between two steps leaves the lease
record and/or a container carrying its labels, which is all the reaper needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from containerlease_tui.config import ImageSpec, LimitSettings, Settings
from containerlease_tui.durations import (
    DurationError,
    check_range,
    format_duration,
    parse_duration,
)
from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    Engine,
    EngineError,
    EngineUnavailable,
    ImageUnavailable,
    PullProgress,
)
from containerlease_tui.models import (
    OWNER_PATTERN,
    EventType,
    Extension,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseStatus,
    Resources,
    cost_for,
    format_memory,
    lease_hours,
    parse_memory,
    utcnow,
    validate_name,
)
from containerlease_tui.store import (
    Charge,
    EventBatch,
    LeaseBusy,
    LeaseStore,
    NameTaken,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)

KEEPALIVE_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_ENV_VALUE = 4096
MAX_ENV_VARS = 64
# While a process provisions a lease it refreshes a key this often, with this TTL; a lease
# stuck before ``running`` without that key is finished off by the reaper's sweep.
PROVISION_BEAT = timedelta(seconds=10)
PROVISION_BEAT_TTL = timedelta(seconds=30)


class LeaseError(Exception):
    """An error for the user: one line, and the exit code the CLI should use."""

    exit_code = 1


class InvalidInput(LeaseError):
    """Bad input: nothing was changed."""

    exit_code = 2


class NotFound(LeaseError):
    """No lease matches the given id, prefix or name."""

    exit_code = 2


class Forbidden(LeaseError):
    """The lease belongs to someone else and the user is not an admin."""

    exit_code = 1


class QuotaError(LeaseError):
    """A quota or budget would be exceeded: nothing was changed."""

    exit_code = 1


class ServiceUnavailable(LeaseError):
    """Redis or the Docker engine cannot be reached."""

    exit_code = 1


class ProvisionFailed(LeaseError):
    """Provisioning failed; the lease is recorded as failed and nothing is left running.

    ``reason`` is the cause alone (the message adds "provision failed: "); ``lease`` the failed
    lease as recorded, when Redis could still be written.
    """

    def __init__(self, reason: str, lease: Lease | None = None) -> None:
        super().__init__(f"provision failed: {reason}")
        self.reason = reason
        self.lease = lease


@dataclass
class ProvisionRequest:
    """What a user asks for; every field is validated by :meth:`LeaseService.check`."""

    image: str
    duration: str | timedelta | None = None
    name: str | None = None
    cpus: float | str | None = None
    memory: str | int | None = None
    env: dict[str, str] = field(default_factory=dict)


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


def bounded_duration(
    text: str | timedelta | None, limits: LimitSettings, what: str = "duration"
) -> timedelta:
    """A lease length or extension within ``[limits]`` (empty: the default duration).

    Raises :class:`InvalidInput` naming the allowed range.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return limits.default_duration
    try:
        value = parse_duration(text)
        check_range(value, limits.min_duration, limits.max_duration, what)
    except DurationError as exc:
        raise InvalidInput(str(exc)) from None
    return value


def plan_extension(
    lease: Lease, amount: timedelta, limits: LimitSettings, now: datetime
) -> datetime:
    """The deadline after extending ``lease`` by ``amount`` at ``now``, or :class:`InvalidInput`.

    The one place the extension rules live (the service applies them, the app previews them):
    only an active lease whose deadline has not passed may be extended (once due, the reaper
    owns it), and never beyond ``max_lifetime`` in total.
    """
    if not lease.status.is_active:
        raise InvalidInput(f"lease {lease.id} is {lease.status.value}: cannot extend")
    if lease.expires_at <= now:
        raise InvalidInput(
            f"lease {lease.id} expired at {lease.expires_at:%H:%M:%S} UTC and is being removed:"
            " too late to extend"
        )
    new_expiry = lease.expires_at + amount
    if new_expiry - lease.created_at > limits.max_lifetime:
        room = limits.max_lifetime - lease.lifetime
        raise InvalidInput(
            f"extension refused: a lease may live at most "
            f"{format_duration(limits.max_lifetime)} in total "
            f"({format_duration(max(room, timedelta(0)))} left to add)"
        )
    return new_expiry


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn store and engine errors into the service's user-facing errors."""
    try:
        yield
    except QuotaExceeded as exc:
        raise QuotaError(str(exc)) from None
    except NameTaken as exc:
        raise InvalidInput(str(exc)) from None
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
        store: LeaseStore,
        engine: Engine,
        *,
        user: str | None = None,
        admin: bool | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.user = user or current_user(settings)
        self.is_admin = is_admin(self.user, settings) if admin is None else admin
        self.host = socket.gethostname()
        self._tasks: set[asyncio.Task[Lease]] = set()

    @classmethod
    def open(cls, settings: Settings, user: str | None = None) -> LeaseService:
        """The app factory: connections are made lazily, so this never blocks or fails."""
        return cls(settings, LeaseStore.from_settings(settings), Engine(settings.docker), user=user)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.close()
        await self.store.close()

    # --- catalog and validation ------------------------------------------------------------

    def catalog(self) -> dict[str, ImageSpec]:
        return dict(self.settings.images)

    async def images(self) -> list[ImageRow]:
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
        return bounded_duration(text, self.settings.limits, what)

    def check(self, req: ProvisionRequest) -> Lease:
        """Validate a request and build its pending lease; raises :class:`InvalidInput`."""
        spec = self.settings.images.get(req.image) if isinstance(req.image, str) else None
        if spec is None:
            choices = ", ".join(sorted(self.settings.images))
            raise InvalidInput(f"unknown image {str(req.image)[:40]!r}: choose one of {choices}")
        duration = self.parse_duration(req.duration)
        limits = self.settings.limits
        cpus = spec.cpus
        if req.cpus is not None and req.cpus != "":
            try:
                cpus = float(req.cpus)
            except (TypeError, ValueError):
                raise InvalidInput(f"invalid cpus {str(req.cpus)[:20]!r}: use a number") from None
            if not 0.01 <= cpus <= limits.max_cpus or cpus != cpus:
                raise InvalidInput(f"cpus must be between 0.01 and {limits.max_cpus:g}")
        memory = spec.memory
        if req.memory is not None and req.memory != "":
            try:
                memory = parse_memory(req.memory)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            if memory > limits.max_memory:
                raise InvalidInput(f"memory must be at most {format_memory(limits.max_memory)}")
        env = self._check_env(req.env)
        self._check_binds(spec)
        lease_kwargs: dict[str, object] = {}
        if req.name:
            try:
                lease_kwargs["name"] = validate_name(req.name)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        now = utcnow()
        lease = Lease(
            name=str(lease_kwargs.get("name", "pending")),
            owner=self.user,
            image=req.image,
            image_ref=spec.ref,
            resources=Resources(cpus=cpus, memory=memory, pids=spec.pids),
            env=env,
            created_at=now,
            expires_at=now + duration,
            hourly_rate=spec.hourly_rate,
            host=self.host,
        )
        if "name" not in lease_kwargs:
            lease = lease.model_copy(update={"name": f"{req.image}-{lease.id[:4]}"})
        return lease

    def estimate(self, req: ProvisionRequest) -> Decimal:
        """The cost of the whole lease, for the live estimate in the form."""
        lease = self.check(req)
        return cost_for(lease.hourly_rate, lease.lifetime)

    @staticmethod
    def _check_env(env: dict[str, str]) -> dict[str, str]:
        if len(env) > MAX_ENV_VARS:
            raise InvalidInput(f"too many environment variables: at most {MAX_ENV_VARS}")
        for key, value in env.items():
            if not _ENV_KEY.fullmatch(key):
                raise InvalidInput(
                    f"invalid environment variable name {key[:40]!r}: "
                    "use letters, digits and '_', not starting with a digit"
                )
            if "\x00" in value or len(value) > MAX_ENV_VALUE:
                raise InvalidInput(
                    f"invalid value for {key}: at most {MAX_ENV_VALUE} characters, no NUL bytes"
                )
        return dict(env)

    def _check_binds(self, spec: ImageSpec) -> list[str]:
        """The image's binds with their host paths resolved, each under an allowed folder.

        Resolving follows symlinks and ``..``, so a link under an allowed folder that points
        outside it is refused. Raises :class:`InvalidInput`.
        """
        try:
            allowed = [p.resolve() for p in self.settings.security.bind_allowlist]
        except (OSError, RuntimeError):
            raise InvalidInput("cannot resolve a folder of [security] bind_allowlist") from None
        checked: list[str] = []
        for bind in spec.binds:
            host_text, _, rest = bind.partition(":")
            host = Path(host_text)
            if not host.is_absolute():
                raise InvalidInput(f"bind mount {bind!r}: the host path must be absolute")
            try:
                resolved = host.resolve()
            except (OSError, RuntimeError):  # a symlink loop, for one
                raise InvalidInput(f"bind mount {bind!r}: cannot resolve {host}") from None
            if not any(resolved == a or a in resolved.parents for a in allowed):
                raise InvalidInput(
                    f"bind mount {bind!r} refused: {host} is not under an allowed folder "
                    "([security] bind_allowlist)"
                )
            checked.append(f"{resolved}:{rest}")
        return checked

    # --- provisioning ----------------------------------------------------------------------

    async def submit(self, req: ProvisionRequest) -> Lease:
        """Write the pending lease (quota-checked, atomic) and return it; nothing runs yet."""
        lease = self.check(req)
        with _translated():
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
        lease = await self._get(lease_id)
        self._authorize(lease, "provision")
        with _translated():
            # One provisioner per lease: a second one must not touch the first one's container.
            if not await self.store.provisioning_start(lease_id, PROVISION_BEAT_TTL):
                raise InvalidInput(f"lease {lease.id} is already being provisioned")
            lease = await self._get(lease_id)
            if lease.status is not LeaseStatus.PENDING:
                await self.store.provisioning_done(lease_id)
                raise InvalidInput(f"lease {lease.id} is {lease.status.value}, not pending")
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
        return Charge(lease.owner, -lease_hours(span))

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
            ids = {cid} if cid else set()
            for info in await self.engine.list_leased(self.settings.redis.key_prefix):
                if info.labels.get(LABEL_LEASE) == lease_id:
                    ids.add(info.id)
            for container_id in ids:
                await self.engine.remove(container_id)
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
            binds = self._check_binds(spec)
        except InvalidInput as exc:
            raise EngineError(str(exc)) from None  # complete() fails the lease, makes nothing
        return ContainerSpec(
            name=lease.container_name,
            image_ref=lease.image_ref,
            cmd=spec.cmd or KEEPALIVE_CMD,
            env=lease.env,
            labels={
                LABEL_LEASE: lease.id,
                LABEL_OWNER: lease.owner,
                LABEL_EXPIRES: lease.expires_at.isoformat().replace("+00:00", "Z"),
                LABEL_INSTANCE: self.settings.redis.key_prefix,
            },
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
            raise InvalidInput(f"invalid lease id or name {ref[:40]!r}")
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
                    + (" …" if len(ids) > 5 else "")
                )
            scopes: list[Callable[[], Awaitable[list[Lease]]]] = [
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
                        f"({', '.join(x.id for x in pick[:5])})"
                    )
        raise NotFound(f"no lease matches {ref!r}")

    def _authorize(self, lease: Lease, action: str) -> None:
        if lease.owner != self.user and not self.is_admin:
            raise Forbidden(
                f"lease {lease.id} belongs to {lease.owner}: "
                f"only its owner or an admin may {action} it"
            )

    async def list(self, *, all_users: bool = False) -> list[Lease]:
        with _translated():
            if all_users:
                return await self.store.list_all()
            return await self.store.list_owner(self.user)

    # --- changes ---------------------------------------------------------------------------

    async def extend(self, ref: str, by: str | timedelta | None = None) -> Lease:
        """Move the deadline by ``by`` (default: the default duration), within the limits."""
        lease = await self.resolve(ref)
        self._authorize(lease, "extend")
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
        with _translated():
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
        self._authorize(lease, "delete")
        if lease.status.is_terminal:
            raise InvalidInput(f"lease {lease.id} is already {lease.status.value}")
        with _translated():
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
                raise InvalidInput(f"lease {lease.id} was closed meanwhile") from None

    async def _container_op(
        self,
        ref: str,
        action: str,
        op: Callable[[str], object],
        target: LeaseStatus | None,
        event: EventType,
    ) -> Lease:
        lease = await self.resolve(ref)
        self._authorize(lease, action)
        if lease.status not in (LeaseStatus.RUNNING, LeaseStatus.STOPPED) or not lease.docker_id:
            raise InvalidInput(f"lease {lease.id} is {lease.status.value}: cannot {action} it")
        with _translated():
            await op(lease.docker_id)  # type: ignore[misc]

            def mutate(current: Lease) -> Lease:
                if target is None or current.status is target:
                    return current
                return current.transition(target)

            return await self.store.update(lease.id, mutate, event=event)

    async def stop(self, ref: str) -> Lease:
        return await self._container_op(
            ref, "stop", self.engine.stop, LeaseStatus.STOPPED, EventType.STOPPED
        )

    async def start(self, ref: str) -> Lease:
        return await self._container_op(
            ref, "start", self.engine.start, LeaseStatus.RUNNING, EventType.STARTED
        )

    async def restart(self, ref: str) -> Lease:
        return await self._container_op(
            ref, "restart", self.engine.restart, LeaseStatus.RUNNING, EventType.RESTARTED
        )

    async def status(self, ref: str) -> LeaseStatusReport:
        """The lease with its container's state and usage; the owner (or an admin) only."""
        lease = await self.resolve(ref)
        self._authorize(lease, "see the status of")
        info: ContainerInfo | None = None
        stats: ContainerStats | None = None
        if lease.docker_id:
            with _translated():
                info = await self.engine.inspect(lease.docker_id)
                if info is not None and info.running:
                    stats = await self.engine.stats(lease.docker_id)
        return LeaseStatusReport(lease, info, stats)

    async def container_for(self, ref: str, action: str) -> Lease:
        """The lease behind ``ref`` if the user may ``action`` its running container."""
        lease = await self.resolve(ref)
        self._authorize(lease, action)
        if not lease.docker_id or lease.status.is_terminal:
            raise InvalidInput(f"lease {lease.id} has no container ({lease.status.value})")
        return lease

    async def logs(
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        """The container's output as lines; the owner (or an admin) only."""
        self._authorize(lease, "read the logs of")
        if not lease.docker_id:
            return
        with _translated():
            async for line in self.engine.logs(lease.docker_id, follow=follow, tail=tail):
                yield line

    async def shell(self, lease: Lease, cmd: list[str] | None = None) -> int:
        self._authorize(lease, "open a shell in")
        if not lease.docker_id:
            raise InvalidInput(f"lease {lease.id} has no container")
        with _translated():
            return await self.engine.shell(lease.docker_id, cmd or ["/bin/sh"])

    async def events(self, after: str = "$", block_ms: int | None = 2000) -> EventBatch:
        """The next events after stream id ``after``, waiting up to ``block_ms``."""
        with _translated():
            return await self.store.follow_events(after, block_ms=block_ms)

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
