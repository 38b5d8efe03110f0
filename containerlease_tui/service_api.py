"""The service interface the app and the CLI use, and which implementation they get.

:class:`LeaseServiceAPI` is what both :class:`~containerlease_tui.leases.LeaseService` (direct
mode: this process talks to Docker and Redis) and
:class:`~containerlease_tui.daemon.client.RemoteLeaseService` (client mode: the daemon does,
this process needs no access to either) provide.

Which one (:func:`service_socket`):

1. ``[service] url`` / ``CONTAINERLEASE_SERVICE_URL`` (``unix:///path``) set: client mode;
2. else, no Redis URL and no Docker settings given, and the ``[service] socket`` (default
   ``/run/containerlease/api.sock``) answers: client mode;
3. else direct mode.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from containerlease_tui.config import Settings

if TYPE_CHECKING:
    from containerlease_tui.activity import EventFilter
    from containerlease_tui.channel import ChannelReply
    from containerlease_tui.daemon.wire import EventHistory
    from containerlease_tui.leases import (
        ContainerState,
        CopyReport,
        EventBatch,
        ExecResult,
        HealthReport,
        ImageRow,
        LeaseList,
        LeaseStatusReport,
        PullProgress,
        ReaperOverview,
        ReaperStatus,
        VolumeRow,
    )
    from containerlease_tui.models import Lease, LeaseEvent
    from containerlease_tui.policy import Action, LeasePolicy, ProvisionRequest
    from containerlease_tui.reaper.guardian import GuardianStart
    from containerlease_tui.spend import Capacity, Outlook, TeamSpend


class LeaseServiceAPI(Protocol):
    """Every call the shells make on the service (the daemon serves each one)."""

    settings: Settings
    user: str
    is_admin: bool

    @property
    def policy(self) -> LeasePolicy: ...
    def parse_duration(self, text: str | timedelta | None, what: str = ...) -> timedelta: ...
    def check(self, req: ProvisionRequest) -> Lease: ...
    def estimate(self, req: ProvisionRequest) -> Decimal: ...
    def allowed(self, lease: Lease, action: Action) -> str | None: ...
    async def close(self) -> None: ...
    async def images(self) -> builtins.list[ImageRow]: ...
    async def submit(self, req: ProvisionRequest) -> Lease: ...
    async def provision(
        self,
        req: ProvisionRequest,
        *,
        on_progress: Callable[[PullProgress], None] | None = ...,
        on_status: Callable[[Lease], None] | None = ...,
    ) -> Lease: ...
    async def complete(
        self,
        lease_id: str,
        *,
        on_progress: Callable[[PullProgress], None] | None = ...,
        on_status: Callable[[Lease], None] | None = ...,
    ) -> Lease: ...
    async def resolve(self, ref: str) -> Lease: ...
    async def list(self, *, all_users: bool = ...) -> LeaseList: ...
    async def extend(self, ref: str, by: str | timedelta | None = ...) -> Lease: ...
    async def release(self, ref: str) -> Lease: ...
    async def stop(self, ref: str) -> Lease: ...
    async def start(self, ref: str) -> Lease: ...
    async def restart(self, ref: str) -> Lease: ...
    async def status(self, ref: str) -> LeaseStatusReport: ...
    async def container_for(self, ref: str, action: str) -> Lease: ...
    def logs(self, lease: Lease, *, follow: bool, tail: int | str = ...) -> AsyncIterator[str]: ...
    async def shell(self, lease: Lease, cmd: builtins.list[str] | None = ...) -> int: ...
    async def exec(self, lease: Lease, cmd: Sequence[str]) -> ExecResult: ...
    async def send(self, ref: str, message: object, within: float = ...) -> ChannelReply: ...
    async def last_event_id(self) -> str: ...
    async def events(self, after: str = ..., block_ms: int | None = ...) -> EventBatch: ...
    async def health(self) -> HealthReport: ...
    async def reaper_status(self) -> ReaperStatus: ...
    async def run_reaper(self, stop: asyncio.Event, *, mode: str = ...) -> None: ...
    async def ensure_reaper(self) -> GuardianStart | None: ...
    async def container_state(self, lease: Lease) -> ContainerState | None: ...
    async def container_states(self, leases: Sequence[Lease]) -> dict[str, ContainerState]: ...
    async def settled(self, lease: Lease, within: timedelta = ...) -> ContainerState | None: ...
    async def last_lines(self, lease: Lease, count: int = ...) -> builtins.list[str]: ...
    async def check_shell(self, lease: Lease) -> None: ...
    def shown(
        self, events: Sequence[LeaseEvent], filt: EventFilter | None = ...
    ) -> builtins.list[LeaseEvent]: ...
    async def event_log(
        self, filt: EventFilter | None = ..., *, limit: int = ...
    ) -> EventHistory: ...
    async def spend(self, now: datetime | None = ...) -> TeamSpend: ...
    async def outlook(self, now: datetime | None = ...) -> Outlook: ...
    async def capacity(self) -> Capacity: ...
    async def reaper_overview(
        self, now: datetime | None = ..., *, upcoming: int = ...
    ) -> ReaperOverview: ...
    async def volumes(self) -> builtins.list[VolumeRow]: ...
    async def volume_rm(self, name: str) -> str: ...
    async def copy_in(self, ref: str, source: Path, dest: str) -> CopyReport: ...
    async def copy_out(
        self,
        ref: str,
        source: str,
        dest: Path,
        on_progress: Callable[[int], None] | None = ...,
    ) -> CopyReport: ...


def socket_answers(path: Path, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def service_socket(settings: Settings) -> Path | None:
    """The daemon's socket when this process should be its client; None for direct mode."""
    from containerlease_tui.embedded import url_configured

    service = settings.service
    if service.url:
        return service.client_socket()
    if url_configured(settings) or "docker" in settings.model_fields_set:
        return None
    if os.environ.get("DOCKER_HOST"):
        return None
    return service.socket if socket_answers(service.socket) else None


async def connect_service(settings: Settings, user: str | None = None) -> LeaseServiceAPI:
    """The service to use: the daemon's client, or a direct :class:`LeaseService` (made
    lazily: it never blocks). Client mode raises ``ServiceUnavailable`` when the daemon does
    not answer (``user`` is then ignored: the daemon says who we are)."""
    path = service_socket(settings)
    if path is not None:
        from containerlease_tui.daemon.client import RemoteLeaseService

        return await RemoteLeaseService.connect(settings, path)
    from containerlease_tui.leases import LeaseService

    return LeaseService.open(settings, user)
