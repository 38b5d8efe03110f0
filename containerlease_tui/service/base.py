"""Shared state and helpers of the service: settings, policy, store, engine, lookups."""

from __future__ import annotations

import builtins
import contextlib
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from containerlease_tui import channel
from containerlease_tui.config import Settings
from containerlease_tui.engine import (
    EngineError,
    EngineUnavailable,
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
    InvalidInput,
    LeaseError,
    NotFound,
    QuotaError,
    ServiceUnavailable,
)
from containerlease_tui.models import (
    Lease,
    lease_hours,
)
from containerlease_tui.policy import (
    Action,
    LeasePolicy,
    ProvisionRequest,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.store import (
    Charge,
    LeaseBusy,
    LeaseContended,
    NameTaken,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)
from containerlease_tui.store.protocol import Store

if TYPE_CHECKING:
    pass

from containerlease_tui.service.identity import current_user, is_admin
from containerlease_tui.service.reports import ImageRow

REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
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


class ServiceBase:
    """The state every part of the service shares, and the lookups and checks they all use.

    The job mixins (``provisioning``, ``lifecycle``, ...) build on this; ``LeaseService``
    composes them.
    """

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

    async def close(self) -> None:
        await self.engine.close()
        await self.store.close()

    # --- catalog and validation -------------------------------------------------------

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

    # --- lookups and permissions ------------------------------------------------------

    async def _get(self, lease_id: str) -> Lease:
        with translated():
            lease = await self.store.get(lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id}")
        return lease

    async def resolve(self, ref: str) -> Lease:
        """A lease by id, unique id prefix, or name (the user's own first)."""
        ref = ref.strip()
        if not REF.fullmatch(ref):
            raise InvalidInput(f"invalid lease id or name {ref[:40]!r}", "lease")
        with translated():
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

    async def _own(self, lease: Lease) -> str:
        """The full id of the lease's container, once its labels confirm it is this lease's
        (``NotOurs``, an ``EngineError``, if not); the id on record if it no longer exists
        (the action then fails as the engine says)."""
        assert lease.docker_id is not None
        full = await own_container(
            self.engine, lease.docker_id, lease.id, self.settings.redis.key_prefix
        )
        return full or lease.docker_id

    async def container_for(self, ref: str, action: str) -> Lease:
        """The lease behind ``ref`` if the user may ``action`` its running container."""
        lease = await self.resolve(ref)
        self._authorize(lease, action)
        if not lease.docker_id or lease.status.is_terminal:
            raise InvalidInput(f"lease {lease.id} has no container ({lease.status.value})", "lease")
        return lease

    # --- shared steps -----------------------------------------------------------------

    def _refund(self, lease: Lease, span: timedelta) -> Charge | None:
        """Give ``span`` of lease-hours back to the owner's daily budget (if there is one)."""
        if self.settings.limits.daily_budget_hours is None or span <= timedelta(0):
            return None
        return Charge(lease.owner, -lease_hours(span), day=lease.created_at)

    def _channel_folder(self, lease_id: str) -> Path:
        """The lease's channel folder on this machine: from the root and the id, never from
        the record's data."""
        return channel.folder_for(self.settings.docker.channels(), lease_id)

    async def _remove_containers(self, lease_id: str, cid: str | None) -> bool:
        """Remove the lease's container by id and by label, then its channel folder (if it has
        one here); True when no container is left."""
        try:
            removal = await remove_lease_containers(
                self.engine, lease_id, cid, self.settings.redis.key_prefix
            )
        except EngineError:
            return False
        if not removal.pending:
            channel.discard(self.settings.docker.channels(), lease_id)
        return True

    # --- published ports --------------------------------------------------------------

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
        with translated():
            return await self._record_ports(lease, lease.docker_id)
