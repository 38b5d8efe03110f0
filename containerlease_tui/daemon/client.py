""":class:`RemoteLeaseService`: the service interface the app and the CLI use, over the
daemon's unix socket. It holds no Docker or Redis connection and needs no credentials: the
daemon decides who the caller is (from the kernel) and what it may do.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from containerlease_tui.config import ImageSpec, LimitSettings, Settings
from containerlease_tui.daemon import wire
from containerlease_tui.errors import InvalidInput, LeaseError, ServiceUnavailable
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

BASE: Final = "http://containerlease"
CONNECT_TIMEOUT: Final = 5.0
CALL_TIMEOUT: Final = 120.0
SHELL_BLOCKED: Final = (
    "the interactive shell is not available through the daemon yet; "
    "use `containerlease exec LEASE -- CMD` (or direct mode on a one-user machine)"
)


def socket_answers(path: Path, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class RemoteLeaseService:
    """The same interface as :class:`~containerlease_tui.leases.LeaseService`, over the daemon.

    Made by :meth:`connect`, which asks the daemon whom it believes the caller is and which
    rules it applies: ``user``, ``is_admin`` and ``settings`` (its limits and image catalog)
    are the daemon's, so the app's form checks what the daemon will enforce.
    """

    def __init__(self, settings: Settings, path: Path) -> None:
        self.path = path
        self.settings = settings
        self.user = ""
        self.is_admin = False
        self.uid = -1
        self.host = "daemon"
        self._session: aiohttp.ClientSession | None = None
        self._policy: LeasePolicy | None = None

    @classmethod
    async def connect(cls, settings: Settings, path: Path) -> RemoteLeaseService:
        service = cls(settings, path)
        try:
            await service.refresh()
        except BaseException:
            await service.close()
            raise
        return service

    async def refresh(self) -> None:
        """Read the session again (who the daemon says we are; its rules)."""
        session = wire.Session.model_validate(await self._call("GET", "/session"))
        self.user, self.is_admin, self.uid = session.user, session.admin, session.uid
        # A daemon of another version may send rules this one cannot read: they still apply
        # (the daemon enforces them), the form just checks less.
        with contextlib.suppress(ValueError):
            self.settings = self.settings.model_copy(
                update={
                    "limits": LimitSettings.model_validate(session.limits),
                    "images": {k: ImageSpec.model_validate(v) for k, v in session.images.items()},
                }
            )

    # --- transport --------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.path)),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            )
        return self._session

    def _down(self, exc: BaseException) -> ServiceUnavailable:
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
            exc.os_error, PermissionError
        ):
            return ServiceUnavailable(
                f"permission denied on the daemon's socket {self.path}: "
                "ask for the socket's group (see docs/security.md)"
            )
        return ServiceUnavailable(
            f"the ContainerLease daemon at {self.path} is not answering"
            f" ({' '.join(str(exc).split())[:120] or type(exc).__name__})"
        )

    async def _raise_for(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        try:
            body: object = json.loads(await response.text())
        except ValueError:
            body = None
        raise wire.lease_error(body, response.status)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                async with self._client().request(
                    method, f"{BASE}{wire.API}{path}", json=body, params=params
                ) as response:
                    await self._raise_for(response)
                    text = await response.text()
        except LeaseError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._down(exc) from None
        if raw:
            return text
        try:
            return json.loads(text)
        except ValueError:
            raise LeaseError("the daemon sent an answer that is not JSON") from None

    async def _lines(
        self, method: str, path: str, *, body: object = None, params: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """A JSON-lines stream; an error line raises the error it carries."""
        try:
            async with self._client().request(
                method, f"{BASE}{wire.API}{path}", json=body, params=params
            ) as response:
                await self._raise_for(response)
                while line := await response.content.readline():
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        continue
                    if item.get("type") == "error":
                        raise wire.lease_error(item, 500)
                    yield item
        except LeaseError:
            raise
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise self._down(exc) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- pure checks, with the daemon's rules -----------------------------------------------

    @property
    def policy(self) -> LeasePolicy:
        policy = self._policy
        if policy is None or policy.settings is not self.settings:
            policy = self._policy = LeasePolicy(self.settings)
        return policy

    def parse_duration(self, text: str | timedelta | None, what: str = "duration") -> timedelta:
        return self.policy.bounded_duration(text, what)

    def check(self, req: ProvisionRequest) -> Lease:
        return self.policy.pending_lease(req, owner=self.user, host=self.host)

    def estimate(self, req: ProvisionRequest) -> Decimal:
        return self.policy.estimate(req)

    def allowed(self, lease: Lease, action: Action) -> str | None:
        return self.policy.allowed(lease, action, self.user, self.is_admin)

    # --- the API ----------------------------------------------------------------------------

    async def images(self) -> builtins.list[ImageRow]:
        return wire.IMAGES.validate_python(await self._call("GET", "/images"))

    async def submit(self, req: ProvisionRequest) -> Lease:
        duration = req.duration
        if isinstance(duration, timedelta):
            duration = f"{int(duration.total_seconds())}s"
        body = {
            "image": req.image,
            "duration": duration,
            "name": req.name,
            "cpus": req.cpus,
            "memory": req.memory,
            "env": req.env,
        }
        return wire.LEASE.validate_python(await self._call("POST", "/leases", body=body))

    async def provision(
        self,
        req: ProvisionRequest,
        *,
        on_progress: Callable[[PullProgress], None] | None = None,
        on_status: Callable[[Lease], None] | None = None,
    ) -> Lease:
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
        result: Lease | None = None
        async for item in self._lines("POST", f"/leases/{_ref(lease_id)}/complete"):
            kind = item.get("type")
            if kind == "progress" and on_progress:
                on_progress(wire.PROGRESS.validate_python(item.get("progress")))
            elif kind == "status" and on_status:
                on_status(wire.LEASE.validate_python(item.get("lease")))
            elif kind == "result":
                result = wire.LEASE.validate_python(item.get("lease"))
        if result is None:
            raise ServiceUnavailable("the daemon ended the provisioning stream without a result")
        return result

    async def resolve(self, ref: str) -> Lease:
        return wire.LEASE.validate_python(await self._call("GET", f"/leases/{_ref(ref)}"))

    async def list(self, *, all_users: bool = False) -> builtins.list[Lease]:
        params = {"all": "1"} if all_users else None
        return wire.LEASES.validate_python(await self._call("GET", "/leases", params=params))

    async def extend(self, ref: str, by: str | timedelta | None = None) -> Lease:
        amount = f"{int(by.total_seconds())}s" if isinstance(by, timedelta) else by
        data = await self._call("POST", f"/leases/{_ref(ref)}/extend", body={"by": amount})
        return wire.LEASE.validate_python(data)

    async def release(self, ref: str) -> Lease:
        return wire.LEASE.validate_python(await self._call("DELETE", f"/leases/{_ref(ref)}"))

    async def stop(self, ref: str) -> Lease:
        return wire.LEASE.validate_python(await self._call("POST", f"/leases/{_ref(ref)}/stop"))

    async def start(self, ref: str) -> Lease:
        return wire.LEASE.validate_python(await self._call("POST", f"/leases/{_ref(ref)}/start"))

    async def restart(self, ref: str) -> Lease:
        data = await self._call("POST", f"/leases/{_ref(ref)}/restart")
        return wire.LEASE.validate_python(data)

    async def status(self, ref: str) -> LeaseStatusReport:
        data = await self._call("GET", f"/leases/{_ref(ref)}/status")
        return wire.STATUS.validate_python(data)

    async def container_for(self, ref: str, action: str) -> Lease:
        data = await self._call("POST", f"/leases/{_ref(ref)}/container", body={"action": action})
        return wire.LEASE.validate_python(data)

    async def logs(
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        params = {"follow": "1" if follow else "0", "tail": str(tail)}
        async for item in self._lines("GET", f"/leases/{_ref(lease.id)}/logs", params=params):
            line = item.get("line")
            if isinstance(line, str):
                yield line

    async def shell(self, lease: Lease, cmd: builtins.list[str] | None = None) -> int:
        raise InvalidInput(SHELL_BLOCKED)

    async def exec(self, lease: Lease, cmd: Sequence[str]) -> ExecResult:
        text = await self._call(
            "POST", f"/leases/{_ref(lease.id)}/exec", body={"cmd": list(cmd)}, raw=True
        )
        return wire.ExecWire.model_validate_json(text).result()

    async def last_event_id(self) -> str:
        return str((await self._call("GET", "/events/last"))["id"])

    async def events(self, after: str = "$", block_ms: int | None = 2000) -> EventBatch:
        params = {"after": after, "block_ms": str(block_ms or 0)}
        return wire.EVENTS.validate_python(await self._call("GET", "/events", params=params))

    async def health(self) -> HealthReport:
        try:
            return wire.HEALTH.validate_python(await self._call("GET", "/health"))
        except LeaseError as exc:
            return HealthReport(False, str(exc), False, str(exc))

    async def reaper_status(self) -> ReaperStatus:
        return wire.REAPERS.validate_python(await self._call("GET", "/reapers"))

    async def run_reaper(self, stop: asyncio.Event, *, mode: str = "in-app") -> None:
        """Nothing to run: the daemon reaps. Returns when ``stop`` is set."""
        await stop.wait()

    async def ensure_reaper(self) -> None:
        """Nothing to start: the daemon runs the reaper."""
        return None


def _ref(ref: str) -> str:
    return quote(ref.strip(), safe="")
