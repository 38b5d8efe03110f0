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
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from containerlease_tui.config import Settings

if TYPE_CHECKING:
    from containerlease_tui.leases import (
        EventBatch,
        ExecResult,
        HealthReport,
        ImageRow,
        LeaseStatusReport,
        PullProgress,
        ReaperStatus,
    )
    from containerlease_tui.models import Lease
    from containerlease_tui.policy import Action, LeasePolicy, ProvisionRequest
    from containerlease_tui.reaper.guardian import GuardianStart


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
    async def list(self, *, all_users: bool = ...) -> builtins.list[Lease]: ...
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
    async def last_event_id(self) -> str: ...
    async def events(self, after: str = ..., block_ms: int | None = ...) -> EventBatch: ...
    async def health(self) -> HealthReport: ...
    async def reaper_status(self) -> ReaperStatus: ...
    async def run_reaper(self, stop: asyncio.Event, *, mode: str = ...) -> None: ...
    async def ensure_reaper(self) -> GuardianStart | None: ...


def service_socket(settings: Settings) -> Path | None:
    """The daemon's socket when this process should be its client; None for direct mode."""
    from containerlease_tui.daemon.client import socket_answers
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
