""":class:`RemoteLeaseService`: the service interface the app and the CLI use, over the
daemon's unix socket. It holds no Docker or Redis connection and needs no credentials: the
daemon decides who the caller is (from the kernel) and what it may do.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import signal
import sys
import termios
import tty
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO, cast
from urllib.parse import quote

import aiohttp

from containerlease_tui.activity import EventFilter, visible
from containerlease_tui.channel import ChannelReply
from containerlease_tui.config import ImageSpec, LimitSettings, Settings
from containerlease_tui.daemon import wire
from containerlease_tui.daemon.wire import EventHistory, LeaseList
from containerlease_tui.errors import InvalidInput, LeaseError, ServiceUnavailable
from containerlease_tui.leases import (
    ContainerState,
    CopyReport,
    EventBatch,
    ExecResult,
    HealthReport,
    ImageRow,
    LeaseStatusReport,
    PullProgress,
    ReaperOverview,
    ReaperStatus,
    VolumeRow,
)
from containerlease_tui.models import Lease, LeaseEvent
from containerlease_tui.policy import Action, LeasePolicy, ProvisionRequest
from containerlease_tui.service_api import socket_answers
from containerlease_tui.spend import Capacity, Outlook, TeamSpend
from containerlease_tui.terminal import InputReader

__all__ = ["RemoteLeaseService", "socket_answers"]

BASE: Final = "http://containerlease"
CONNECT_TIMEOUT: Final = 5.0
CALL_TIMEOUT: Final = 120.0
COPY_BLOCKED: Final = (
    "cp is not available through the daemon yet (it would read or write files in the "
    "daemon's world, not yours); use `containerlease exec` or direct mode"
)


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
        limit: float = CALL_TIMEOUT,
    ) -> Any:
        try:
            async with asyncio.timeout(limit):
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

    async def list(self, *, all_users: bool = False) -> LeaseList:
        params = {"all": "1" if all_users else "0", "skipped": "1"}
        return wire.lease_list(await self._call("GET", "/leases", params=params))

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
        """The interactive shell through the daemon's WebSocket (:mod:`.shell`): this terminal
        in raw mode, the remote TTY sized like it and resized with it; returns the exit code.
        With piped stdin: no TTY, the input's end is passed on."""
        await self.check_shell(lease)  # a typed refusal before the terminal changes
        return await remote_shell(self, lease.id, cmd or ["/bin/sh"])

    async def exec(self, lease: Lease, cmd: Sequence[str]) -> ExecResult:
        text = await self._call(
            "POST", f"/leases/{_ref(lease.id)}/exec", body={"cmd": list(cmd)}, raw=True
        )
        return wire.ExecWire.model_validate_json(text).result()

    async def send(self, ref: str, message: object, within: float = 30.0) -> ChannelReply:
        data = await self._call(
            "POST",
            f"/leases/{_ref(ref)}/send",
            body={"message": message, "timeout": within},
            limit=within + CALL_TIMEOUT,
        )
        if not isinstance(data, dict) or "reply" not in data:
            raise LeaseError("the daemon sent an answer without a reply")
        seconds = data.get("seconds")
        return ChannelReply(
            data["reply"], float(seconds) if isinstance(seconds, int | float) else 0.0
        )

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

    async def container_state(self, lease: Lease) -> ContainerState | None:
        data = await self._call("GET", f"/leases/{_ref(lease.id)}/state")
        return wire.STATE.validate_python(data)

    async def container_states(self, leases: Sequence[Lease]) -> dict[str, ContainerState]:
        ids = [lease.id for lease in leases if lease.docker_id]
        if not ids:
            return {}
        data = await self._call("POST", "/containers/states", body={"ids": ids})
        return wire.STATES.validate_python(data)

    async def settled(
        self, lease: Lease, within: timedelta = timedelta(seconds=2)
    ) -> ContainerState | None:
        params = {"within_ms": str(int(within.total_seconds() * 1000))}
        data = await self._call("GET", f"/leases/{_ref(lease.id)}/settled", params=params)
        return wire.STATE.validate_python(data)

    async def last_lines(self, lease: Lease, count: int = 10) -> builtins.list[str]:
        params = {"count": str(count)}
        data = await self._call("GET", f"/leases/{_ref(lease.id)}/last-lines", params=params)
        return wire.LINES.validate_python(data)

    async def check_shell(self, lease: Lease) -> None:
        await self._call("POST", f"/leases/{_ref(lease.id)}/check-shell")

    def shown(
        self, events: Sequence[LeaseEvent], filt: EventFilter | None = None
    ) -> builtins.list[LeaseEvent]:
        # Pure: the same redaction as direct mode, with the identity the daemon gave us (the
        # daemon redacts what it sends anyway; this only filters).
        chosen = filt.select(events) if filt is not None else builtins.list(events)
        return [visible(e, self.user, self.is_admin) for e in chosen]

    async def event_log(
        self, filt: EventFilter | None = None, *, limit: int = 1000
    ) -> EventHistory:
        body = {"filter": wire.dump(wire.FILTER, filt), "limit": limit}
        return wire.HISTORY.validate_python(await self._call("POST", "/events/log", body=body))

    # ``now`` is ignored in client mode: the daemon's clock decides the day (a client must not
    # move the boundary of the budget it reports on).
    async def spend(self, now: datetime | None = None) -> TeamSpend:
        return wire.SPEND.validate_python(await self._call("GET", "/spend"))

    async def outlook(self, now: datetime | None = None) -> Outlook:
        return wire.OUTLOOK.validate_python(await self._call("GET", "/outlook"))

    async def capacity(self) -> Capacity:
        return wire.CAPACITY.validate_python(await self._call("GET", "/capacity"))

    async def reaper_overview(
        self, now: datetime | None = None, *, upcoming: int = 10
    ) -> ReaperOverview:
        params = {"upcoming": str(upcoming)}
        data = await self._call("GET", "/reapers/overview", params=params)
        return wire.OVERVIEW.validate_python(data)

    async def volumes(self) -> builtins.list[VolumeRow]:
        return wire.VOLUMES.validate_python(await self._call("GET", "/volumes"))

    async def volume_rm(self, name: str) -> str:
        data = await self._call("DELETE", f"/volumes/{_ref(name)}")
        return str(data["name"])

    async def copy_in(self, ref: str, source: Path, dest: str) -> CopyReport:
        raise InvalidInput(COPY_BLOCKED)

    async def copy_out(
        self,
        ref: str,
        source: str,
        dest: Path,
        on_progress: Callable[[int], None] | None = None,
    ) -> CopyReport:
        raise InvalidInput(COPY_BLOCKED)


async def remote_shell(service: RemoteLeaseService, lease_id: str, cmd: Sequence[str]) -> int:
    stdin_fd = _fileno(sys.stdin, 0)
    out = _binary(sys.stdout, sys.__stdout__)
    err = _binary(sys.stderr, sys.__stderr__)
    interactive = os.isatty(stdin_fd)
    params: builtins.list[tuple[str, str]] = [
        ("cmd", json.dumps(list(cmd))),
        ("tty", "1" if interactive else "0"),
        ("term", os.environ.get("TERM") or "xterm"),
    ]
    size = _terminal_size(stdin_fd, _fileno(sys.stdout, 1)) if interactive else None
    if size is not None:
        params += [("size", str(size.lines)), ("size", str(size.columns))]
    url = f"{BASE}{wire.API}/leases/{_ref(lease_id)}/shell"
    try:
        ws = await service._client().ws_connect(url, params=params, heartbeat=30)
    except aiohttp.WSServerHandshakeError as exc:
        raise wire.lease_error(None, exc.status) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise service._down(exc) from None
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(ws.close)
        reader = InputReader(stdin_fd)
        stack.callback(reader.close)
        if interactive:
            saved = termios.tcgetattr(stdin_fd)
            stack.callback(termios.tcsetattr, stdin_fd, termios.TCSADRAIN, saved)
            tty.setraw(stdin_fd)
            # Follow local SIGWINCH, unless someone else (e.g. a TUI) owns that signal.
            if signal.getsignal(signal.SIGWINCH) in (signal.SIG_DFL, signal.SIG_IGN, None):
                tasks: set[asyncio.Task[None]] = set()

                def on_resize() -> None:
                    now = _terminal_size(stdin_fd, _fileno(sys.stdout, 1))
                    if now is None or ws.closed:
                        return
                    task = loop.create_task(
                        ws.send_str(json.dumps({"resize": [now.lines, now.columns]}))
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signal.SIGWINCH, on_resize)
                    stack.callback(loop.remove_signal_handler, signal.SIGWINCH)
        feeder = asyncio.create_task(_feed_ws(reader, ws))
        try:
            return await _drain_ws(service, ws, out, err)
        finally:
            feeder.cancel()
            await asyncio.wait([feeder])


async def _feed_ws(reader: InputReader, ws: aiohttp.ClientWebSocketResponse) -> None:
    try:
        while data := await reader.read():
            await ws.send_bytes(data)
        await ws.send_str(json.dumps({"eof": True}))
    except (ConnectionError, RuntimeError, aiohttp.ClientError):
        return  # the shell ended and the connection with it


async def _drain_ws(
    service: RemoteLeaseService,
    ws: aiohttp.ClientWebSocketResponse,
    out: BinaryIO,
    err: BinaryIO,
) -> int:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            data: bytes = message.data
            if not data:
                continue
            target = err if data[0] == 2 else out
            target.write(data[1:])
            target.flush()
        elif message.type == aiohttp.WSMsgType.TEXT:
            try:
                end = json.loads(message.data)
            except ValueError:
                continue
            if isinstance(end, dict) and isinstance(end.get("exit"), int):
                return int(end["exit"])
            if isinstance(end, dict) and end.get("error"):
                raise wire.lease_error(end, 500)
        else:
            break
    raise ServiceUnavailable(f"the daemon at {service.path} ended the shell without an exit code")


def _fileno(stream: object, default: int) -> int:
    try:
        return cast(TextIO, stream).fileno()
    except (AttributeError, ValueError, OSError):
        return default


def _binary(stream: object, fallback: TextIO | None) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    if buffer is None and fallback is not None:
        buffer = getattr(fallback, "buffer", None)
    if buffer is None:
        raise InvalidInput("cannot open a shell: there is no terminal to write to")
    return cast(BinaryIO, buffer)


def _terminal_size(*fds: int) -> os.terminal_size | None:
    for fd in fds:
        with contextlib.suppress(OSError):
            return os.get_terminal_size(fd)
    return None


def _ref(ref: str) -> str:
    return quote(ref.strip(), safe="")
