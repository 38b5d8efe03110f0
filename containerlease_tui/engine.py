"""Engine: the one place that talks to the Docker daemon, through aiodocker.

Every aiodocker / aiohttp failure leaves this module as an :class:`EngineError` (or a subclass)
whose message is one line a user understands, so callers never handle transport exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import ssl
import stat
import struct
import sys
import termios
import time
import tty
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, TextIO, cast

import aiodocker
import aiohttp
from aiodocker.execs import Exec
from aiodocker.stream import Stream
from aiodocker.types import JSONValue

from containerlease_tui.config import DockerSettings, redact_url

LABEL_LEASE: Final = "containerlease.lease"
LABEL_OWNER: Final = "containerlease.owner"
LABEL_EXPIRES: Final = "containerlease.expires-at"  # RFC 3339 UTC, the deadline at creation
LABEL_INSTANCE: Final = "containerlease.instance"  # = settings.redis.key_prefix

# Seconds between SIGTERM and SIGKILL when stopping or restarting.
STOP_GRACE: Final = 5
# A removal already under way in the daemon (409) is waited out for this long.
REMOVAL_WAIT: Final = 10.0
# Once a pull has started streaming, this long without a single message counts as stalled.
PULL_STALL: Final = 120.0
# Docker sends one-shot stats after sampling twice, about a second apart.
STATS_EXTRA: Final = 3.0
# An image seen present is taken as present for this long (see Engine.image_seen): a burst of
# provisions then costs the engine no lookup per container.
IMAGE_SEEN_TTL: Final = 30.0
# A line longer than this (no newline in sight) is handed out in pieces, not buffered forever.
MAX_LINE: Final = 1 << 20

_Json = dict[str, object]
# Docker states in which the container's process exists (inspect's State.Running is true).
_ALIVE_STATES = frozenset({"running", "paused", "restarting"})
_ZERO_TIME = "0001-01-01T00:00:00Z"
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\d*(Z|[+-]\d{2}:\d{2})$")
_LIST_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_LIST_EXIT = re.compile(r"^Exited \((-?\d+)\)")
_FRAME_HEADER = struct.Struct(">BxxxL")


class EngineError(Exception):
    """A Docker engine problem, phrased as one line a user understands (no secrets)."""


class EngineUnavailable(EngineError):
    """The Docker daemon cannot be reached: no socket, connection refused, or no answer."""


class ImageUnavailable(EngineError):
    """The image is not present locally and could not be pulled."""


@dataclass(frozen=True)
class PullProgress:
    """One progress message of an image pull (``layer`` is empty for whole-image messages)."""

    layer: str
    status: str
    current: int
    total: int
    layers_done: int
    layers_total: int


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one leased container."""

    name: str
    image_ref: str
    cmd: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    cpus: float
    memory: int
    pids: int
    cap_add: list[str]
    binds: list[str]
    network: str
    init: bool = True
    """An init process as PID 1 (``HostConfig.Init``): reaps zombies, forwards signals."""
    no_new_privileges: bool = True
    """``no-new-privileges`` in ``SecurityOpt``; false leaves it to the engine's default."""


@dataclass(frozen=True)
class ContainerInfo:
    """What the engine says about a container. ``exit_code`` is set only once it has exited."""

    id: str
    name: str
    state: str
    running: bool
    health: str | None
    started_at: datetime | None
    created_at: datetime | None
    exit_code: int | None
    labels: dict[str, str]


@dataclass(frozen=True)
class ContainerStats:
    """A one-shot resource sample: CPU as ``docker stats`` shows it, memory without page cache."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int


# --- parsing helpers -------------------------------------------------------------------------


def _as_dict(value: object) -> _Json:
    return cast(_Json, value) if isinstance(value, dict) else {}


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


def _labels(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _as_dict(value).items()}


def _parse_time(text: object) -> datetime | None:
    """Docker's RFC 3339 times (nanosecond fractions allowed); its zero time means "never"."""
    if not isinstance(text, str) or not text or text == _ZERO_TIME:
        return None
    match = _TIME.match(text)
    if match is None:
        return None
    base, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    moment = datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    if moment.year <= 1:
        return None
    return moment.astimezone(UTC)


def _log_key(text: str) -> tuple[int, int] | None:
    """A log timestamp as (epoch seconds, nanoseconds): exact, so reconnects can compare."""
    match = _TIME.match(text)
    if match is None:
        return None
    base, fraction, zone = match.groups()
    whole = datetime.fromisoformat(f"{base}{'+00:00' if zone == 'Z' else zone}")
    return int(whole.timestamp()), int((fraction or "").ljust(9, "0"))


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.strip().split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _short(cid: str) -> str:
    return cid[:12] if re.fullmatch(r"[0-9a-f]{64}", cid) else cid


def _reason(exc: BaseException) -> str:
    """The short cause of a connection failure ("No such file or directory")."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        return os_error.strerror or _one_line(str(os_error)) or type(os_error).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the stream was cut short"
    return _one_line(str(exc)) or type(exc).__name__


def _pull_reason(message: str) -> str:
    """Docker's pull errors are long Go error chains; keep what tells the user what to do."""
    text = _one_line(message, 160)
    low = text.lower()
    if "no such host" in low or "server misbehaving" in low:
        host = re.search(r"lookup (\S+?)(?: on |:|$)", text)
        return f"cannot resolve registry {host.group(1)}" if host else "cannot resolve registry"
    if "x509" in low or "certificate" in low:
        return "the registry's TLS certificate is not trusted"
    if "connection refused" in low:
        return "the registry refused the connection"
    if "network is unreachable" in low or "no route to host" in low:
        return "no network route to the registry"
    if "i/o timeout" in low or "deadline exceeded" in low or "timeout" in low:
        return "the registry did not answer in time"
    if "manifest unknown" in low or "not found" in low:
        return "the registry has no such image or tag"
    if "unauthorized" in low or "denied" in low or "authentication required" in low:
        return "access denied (the image does not exist or needs a registry login)"
    return text


def _info_from_inspect(data: _Json) -> ContainerInfo:
    state = _as_dict(data.get("State"))
    status = _as_str(state.get("Status"))
    health = _as_str(_as_dict(state.get("Health")).get("Status")) or None
    return ContainerInfo(
        id=_as_str(data.get("Id")),
        name=_as_str(data.get("Name")).lstrip("/"),
        state=status,
        running=bool(state.get("Running")),
        health=health,
        started_at=_parse_time(state.get("StartedAt")),
        created_at=_parse_time(data.get("Created")),
        exit_code=_as_int(state.get("ExitCode")) if status in ("exited", "dead") else None,
        labels=_labels(_as_dict(data.get("Config")).get("Labels")),
    )


def _info_from_list(data: _Json) -> ContainerInfo:
    """The list endpoint's summary: no start time, health and exit code only in ``Status``."""
    names = data.get("Names")
    name = _as_str(names[0]) if isinstance(names, list) and names else ""
    state = _as_str(data.get("State"))
    summary = _as_str(data.get("Status"))
    health_match = _LIST_HEALTH.search(summary)
    health = None
    if health_match:
        health = health_match.group(1).removeprefix("health: ")
    exit_match = _LIST_EXIT.match(summary)
    created = _as_int(data.get("Created"))
    return ContainerInfo(
        id=_as_str(data.get("Id")),
        name=name.lstrip("/"),
        state=state,
        running=state in _ALIVE_STATES,
        health=health,
        started_at=None,
        created_at=datetime.fromtimestamp(created, UTC) if created else None,
        exit_code=int(exit_match.group(1)) if exit_match else None,
        labels=_labels(data.get("Labels")),
    )


def _cpu_percent(sample: _Json) -> float:
    """``docker stats``' formula: container CPU time over host CPU time, times online CPUs."""
    cpu = _as_dict(sample.get("cpu_stats"))
    pre = _as_dict(sample.get("precpu_stats"))
    usage = _as_dict(cpu.get("cpu_usage"))
    total = _as_int(usage.get("total_usage"))
    pre_total = _as_int(_as_dict(pre.get("cpu_usage")).get("total_usage"))
    system = _as_int(cpu.get("system_cpu_usage"))
    pre_system = _as_int(pre.get("system_cpu_usage"))
    if None in (total, pre_total, system, pre_system):
        return 0.0
    cpu_delta = cast(int, total) - cast(int, pre_total)
    system_delta = cast(int, system) - cast(int, pre_system)
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    percpu = usage.get("percpu_usage")
    online = _as_int(cpu.get("online_cpus")) or (len(percpu) if isinstance(percpu, list) else 0)
    return cpu_delta / system_delta * max(online, 1) * 100.0


def _memory_usage(sample: _Json) -> tuple[int, int]:
    """(usage without reclaimable page cache, limit), as ``docker stats`` computes it."""
    memory = _as_dict(sample.get("memory_stats"))
    usage = _as_int(memory.get("usage")) or 0
    limit = _as_int(memory.get("limit")) or 0
    details = _as_dict(memory.get("stats"))
    # cgroup v1 reports total_inactive_file, v2 inactive_file; older engines only "cache".
    for key in ("total_inactive_file", "inactive_file", "cache"):
        cache = _as_int(details.get(key))
        if cache is not None and cache < usage:
            return usage - cache, limit
    return usage, limit


# --- log stream helpers ----------------------------------------------------------------------


class _LineSplitter:
    """Turns stream chunks into text lines, one buffer per stream, so split lines rejoin."""

    def __init__(self) -> None:
        self._buffers: dict[int, bytearray] = {}

    def feed(self, stream: int, data: bytes) -> list[str]:
        buffer = self._buffers.setdefault(stream, bytearray())
        buffer.extend(data)
        lines: list[str] = []
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) >= MAX_LINE:
                    lines.append(_decode(bytes(buffer)))
                    buffer.clear()
                return lines
            lines.append(_decode(bytes(buffer[:end])))
            del buffer[: end + 1]

    def flush(self) -> list[str]:
        lines = [_decode(bytes(b)) for b in self._buffers.values() if b]
        self._buffers.clear()
        return lines


def _decode(line: bytes) -> str:
    return line.removesuffix(b"\r").decode("utf-8", errors="replace")


class _LogCursor:
    """Where a followed log got to, so a reconnect with ``since`` neither repeats nor drops lines.

    Docker's ``since`` is inclusive, so a reconnect re-sends the messages stamped with the last
    timestamp seen; exactly as many of those as were already delivered are skipped.
    """

    def __init__(self) -> None:
        self.last: tuple[int, int] | None = None
        self._seen_at_last = 0
        self._skip = 0

    def accept(self, key: tuple[int, int] | None) -> bool:
        if key is None:
            return True
        if key == self.last:
            if self._skip:
                self._skip -= 1
                return False
            self._seen_at_last += 1
            return True
        self._skip = 0
        if self.last is None or key > self.last:
            self.last, self._seen_at_last = key, 1
        return True

    def rewind(self) -> str | None:
        """The ``since`` value for a reconnect (None: nothing seen yet)."""
        if self.last is None:
            return None
        self._skip = self._seen_at_last
        seconds, nanos = self.last
        return f"{seconds}.{nanos:09d}"


def _split_timestamp(payload: bytes) -> tuple[tuple[int, int] | None, bytes]:
    head, sep, rest = payload.partition(b" ")
    if sep and len(head) <= 40:
        key = _log_key(head.decode("ascii", errors="replace"))
        if key is not None:
            return key, rest
    return None, payload


# --- interactive shell helpers ---------------------------------------------------------------


class _InputReader:
    """Chunks of a local file descriptor, read without blocking the event loop.

    Pipes and terminals are watched with ``add_reader``, so nothing is left reading stdin once
    the shell ends (a leftover thread would steal the TUI's keystrokes); regular files, which
    the selector cannot watch, are read in a worker thread since they never block for long.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._watching = False
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            self._queue.put_nowait(b"")  # stdin is closed: no input at all
            return
        if not regular:
            try:
                self._loop.add_reader(fd, self._on_readable)
                self._watching = True
            except (OSError, NotImplementedError, ValueError):
                self._watching = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # e.g. EIO from a hung-up terminal: treat as end of input
        if not data:
            self.close()
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        if self._watching or not self._queue.empty():
            return await self._queue.get()
        return await asyncio.to_thread(os.read, self._fd, 65536)

    def close(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False


def _close_stdin(stream: Stream) -> None:
    """Half-close the exec's hijacked connection: the process sees EOF, its output still flows.

    aiodocker's ``Stream.close`` closes both directions, so this reaches for the transport.
    """
    response = getattr(stream, "_resp", None)
    connection = getattr(response, "connection", None)
    transport = getattr(connection, "transport", None)
    if isinstance(transport, asyncio.WriteTransport) and transport.can_write_eof():
        transport.write_eof()


def _fileno(stream: object, default: int) -> int:
    try:
        return cast(TextIO, stream).fileno()
    except (AttributeError, ValueError, OSError):
        return default  # replaced by something fd-less (a capture): use the process's own


def _binary(stream: object, fallback: TextIO | None) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    if buffer is None and fallback is not None:
        buffer = getattr(fallback, "buffer", None)
    if buffer is None:
        raise EngineError("cannot open a shell: there is no terminal to write to")
    return cast(BinaryIO, buffer)


def _terminal_size(*fds: int) -> os.terminal_size | None:
    for fd in fds:
        with contextlib.suppress(OSError):
            return os.get_terminal_size(fd)
    return None


# --- the engine ------------------------------------------------------------------------------


class Engine:
    """The Docker engine as ContainerLease uses it: leased containers, their logs and shells.

    One aiodocker client per Engine, created on first use and closed by :meth:`close`.
    """

    def __init__(self, settings: DockerSettings) -> None:
        self._settings = settings
        self._url = redact_url(settings.url)
        self._docker: aiodocker.Docker | None = None
        self._seen: dict[str, float] = {}  # image ref → monotonic time it was last seen present

    # --- plumbing ------------------------------------------------------------------------

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = self._connect()
        return self._docker

    def _connect(self) -> aiodocker.Docker:
        url = self._settings.url
        t = self._settings.timeout
        timeout = aiohttp.ClientTimeout(total=t, connect=t, sock_connect=t, sock_read=t)
        scheme = url.partition("://")[0].lower()
        if scheme not in ("unix", "tcp", "http", "https"):
            raise EngineError(f"unsupported Docker URL {self._url}: use unix:///path or tcp://host")
        ssl_context: ssl.SSLContext | None = None
        if scheme in ("tcp", "http", "https") and (self._settings.tls_verify or scheme == "https"):
            ssl_context = self._ssl_context() if self._settings.tls_verify else None
            # aiohttp decides on TLS from the scheme, and aiodocker keeps tcp:// as given.
            url = "https://" + url.partition("://")[2]
        try:
            return aiodocker.Docker(url=url, timeout=timeout, ssl_context=ssl_context)
        except (ValueError, OSError, aiodocker.DockerError) as exc:
            raise EngineError(
                f"cannot use the Docker engine at {self._url}: {_reason(exc)}"
            ) from exc

    def _ssl_context(self) -> ssl.SSLContext:
        folder = self._settings.cert_path or Path(
            os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker"
        )
        try:
            context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
            context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        except FileNotFoundError as exc:
            raise EngineError(
                f"TLS for the Docker engine needs ca.pem, cert.pem and key.pem in {folder}: "
                f"{Path(exc.filename or '?').name} is missing"
            ) from exc
        except (ssl.SSLError, OSError) as exc:
            raise EngineError(f"cannot load the TLS files in {folder}: {_reason(exc)}") from exc
        return context

    def _unreachable(self, cause: BaseException) -> EngineUnavailable:
        reason = _reason(cause)
        hint = " (is your user allowed to use Docker?)" if "permission" in reason.lower() else ""
        return EngineUnavailable(f"the Docker engine is unreachable at {self._url}: {reason}{hint}")

    def _translate(self, exc: BaseException, action: str, limit: float | None) -> EngineError:
        """Any transport or API failure → the EngineError a user sees."""
        if isinstance(exc, aiodocker.DockerError):
            if exc.status == 900:  # aiodocker's code for "could not connect"
                return self._unreachable(exc.__context__ or exc)
            if exc.status == 404 and "no such container" in exc.message.lower():
                return EngineError(f"could not {action}: the container does not exist")
            return EngineError(f"could not {action}: {_one_line(exc.message)}")
        if isinstance(exc, TimeoutError):
            within = f" within {limit:g}s" if limit else ""
            return EngineUnavailable(
                f"the Docker engine at {self._url} did not answer{within} "
                f"(while trying to {action})"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._unreachable(exc)
        if isinstance(
            exc,
            aiohttp.ClientConnectionError
            | aiohttp.ClientPayloadError
            | asyncio.IncompleteReadError
            | OSError,
        ):
            return EngineUnavailable(
                f"lost the connection to the Docker engine at {self._url} "
                f"(while trying to {action}): {_reason(exc)}"
            )
        if isinstance(exc, json.JSONDecodeError):
            return EngineError(f"could not {action}: the Docker engine sent an unreadable answer")
        return EngineError(f"could not {action}: {_one_line(str(exc)) or type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def _guard(self, action: str, *, extra: float = 0.0) -> AsyncIterator[None]:
        """Bound a call by the configured timeout (+ ``extra``) and translate its failures."""
        limit = self._settings.timeout + extra
        try:
            async with asyncio.timeout(limit):
                yield
        except EngineError:
            raise
        except (
            aiodocker.DockerError,
            aiohttp.ClientError,
            OSError,
            TimeoutError,
            json.JSONDecodeError,
        ) as exc:
            raise self._translate(exc, action, limit) from exc

    async def _inspect_raw(self, cid: str) -> _Json | None:
        async with self._guard(f"inspect container {_short(cid)}"):
            try:
                return cast(_Json, await self._client().containers.container(cid).show())
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return None
                raise

    # --- public API ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close the HTTP session; the Engine may be used again afterwards (it reconnects)."""
        docker, self._docker = self._docker, None
        if docker is not None:
            with contextlib.suppress(Exception):
                await docker.close()

    async def ping(self) -> str:
        """The engine's version, or EngineUnavailable."""
        async with self._guard("talk to the Docker engine"):
            version = _as_dict(await self._client().version())
        return _as_str(version.get("Version")) or "unknown"

    async def image_present(self, ref: str) -> bool:
        """Whether the engine has ``ref`` locally."""
        async with self._guard(f"look up image {ref}"):
            try:
                await self._client().images.inspect(ref)
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return False
                if exc.status == 400:  # a malformed reference: no engine could ever have it
                    why = exc.message.rsplit(": ", 1)[-1]
                    raise ImageUnavailable(f"{ref} is not a valid image reference: {why}") from exc
                raise
        return True

    async def image_seen(self, ref: str) -> bool:
        """Like :meth:`image_present`, but an image seen present in the last
        :data:`IMAGE_SEEN_TTL` seconds is taken as present without asking the engine.

        If it was removed meanwhile, :meth:`create` raises :class:`ImageUnavailable` (and
        forgets it), so a caller can still pull it then.
        """
        seen = self._seen.get(ref)
        if seen is not None and time.monotonic() - seen < IMAGE_SEEN_TTL:
            return True
        present = await self.image_present(ref)
        if present:
            self._seen[ref] = time.monotonic()
        return present

    async def ensure_image(
        self, ref: str, on_progress: Callable[[PullProgress], None] | None = None
    ) -> None:
        """Return at once if ``ref`` is local, else pull it (ImageUnavailable if that fails)."""
        if await self.image_present(ref):
            return
        await self._pull(ref, on_progress)
        if not await self.image_present(ref):
            raise ImageUnavailable(
                f"image {ref} is not available locally and could not be pulled: "
                "the engine reported success but does not have it"
            )

    async def _pull(self, ref: str, on_progress: Callable[[PullProgress], None] | None) -> None:
        layers: dict[str, bool] = {}  # layer id → done
        messages = cast(
            AsyncGenerator[dict[str, object], None], self._client().images.pull(ref, stream=True)
        )
        try:
            first = True
            while (message := await self._pull_message(ref, messages, first)) is not None:
                first = False
                layer = _as_str(message.get("id"))
                status = _as_str(message.get("status"))
                if layer and not status.startswith("Pulling from"):  # that one's id is the tag
                    done = status in ("Pull complete", "Already exists")
                    layers[layer] = layers.get(layer, False) or done
                else:
                    layer = ""
                detail = _as_dict(message.get("progressDetail"))
                if on_progress is not None:
                    on_progress(
                        PullProgress(
                            layer=layer,
                            status=status,
                            current=_as_int(detail.get("current")) or 0,
                            total=_as_int(detail.get("total")) or 0,
                            layers_done=sum(layers.values()),
                            layers_total=len(layers),
                        )
                    )
        finally:
            with contextlib.suppress(Exception):
                await messages.aclose()

    async def _pull_message(
        self, ref: str, messages: AsyncGenerator[dict[str, object], None], first: bool
    ) -> _Json | None:
        """The pull's next progress message (None at its end), with its failures translated."""
        failed = f"image {ref} is not available locally and could not be pulled"
        # Docker resolves and contacts the registry before its first message, so the configured
        # timeout bounds that connect phase; after that only a long silence ends the pull.
        limit = self._settings.timeout if first else max(PULL_STALL, self._settings.timeout)
        try:
            async with asyncio.timeout(limit):
                return _as_dict(await anext(messages))
        except StopAsyncIteration:
            return None
        except aiodocker.DockerError as exc:
            if exc.status == 900:
                raise self._unreachable(exc.__context__ or exc) from exc
            raise ImageUnavailable(f"{failed}: {_pull_reason(exc.message)}") from exc
        except TimeoutError as exc:
            what = "the registry did not answer" if first else "the pull stalled"
            raise ImageUnavailable(f"{failed}: {what} for {limit:g}s") from exc
        except (aiohttp.ClientError, OSError, json.JSONDecodeError) as exc:
            raise self._translate(exc, f"pull image {ref}", None) from exc

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; returns its id."""
        host_config: dict[str, JSONValue] = {
            "Memory": spec.memory,
            "MemorySwap": spec.memory,  # equal to Memory: no swap beyond the limit
            "NanoCpus": round(spec.cpus * 1e9),
            "PidsLimit": spec.pids,
            "Init": spec.init,  # reaps zombies and forwards signals, so stop is quick
            "RestartPolicy": {"Name": "no"},  # the reaper, not the daemon, decides its fate
            "CapDrop": ["ALL"],
            "CapAdd": list(spec.cap_add),
            "SecurityOpt": ["no-new-privileges"] if spec.no_new_privileges else [],
            "Privileged": False,  # never, whatever the image's configuration says
            "ReadonlyRootfs": False,
            "Binds": list(spec.binds),
            "NetworkMode": spec.network,
        }
        config: dict[str, JSONValue] = {
            "Image": spec.image_ref,
            "Env": [f"{key}={value}" for key, value in spec.env.items()],
            "Labels": dict(spec.labels),
            "Tty": False,
            "HostConfig": host_config,
        }
        if spec.cmd:
            config["Cmd"] = list(spec.cmd)
        async with self._guard(f"create container {spec.name}"):
            try:
                container = await self._client().containers.create(config, name=spec.name)
            except aiodocker.DockerError as exc:
                if exc.status == 409:
                    raise EngineError(f"a container named {spec.name} already exists") from exc
                if exc.status == 404 and "image" in exc.message.lower():
                    self._seen.pop(spec.image_ref, None)
                    raise ImageUnavailable(
                        f"image {spec.image_ref} is not available locally"
                    ) from exc
                raise
        return container.id

    async def start(self, cid: str) -> None:
        """Start the container (a no-op if it runs already)."""
        async with self._guard(f"start container {_short(cid)}"):
            await self._client().containers.container(cid).start()

    async def stop(self, cid: str, timeout: int = STOP_GRACE) -> None:  # noqa: ASYNC109
        """Stop the container: SIGTERM, then SIGKILL after ``timeout`` seconds (a grace period)."""
        async with self._guard(f"stop container {_short(cid)}", extra=timeout):
            await self._client().containers.container(cid).stop(t=timeout)

    async def restart(self, cid: str) -> None:
        """Restart the container, stopping it as :meth:`stop` does."""
        async with self._guard(f"restart container {_short(cid)}", extra=STOP_GRACE):
            await self._client().containers.container(cid).restart(t=STOP_GRACE)

    async def remove(self, cid: str) -> bool:
        """Force-remove the container and its anonymous volumes; True once it no longer exists.

        A container that is already gone counts as removed; a removal already under way in the
        daemon is waited out (up to :data:`REMOVAL_WAIT`), and False means it is still there.
        """
        async with self._guard(f"remove container {_short(cid)}"):
            try:
                await self._client().containers.container(cid).delete(force=True, v=True)
                return True
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return True
                if "already in progress" not in exc.message:
                    raise
        deadline = time.monotonic() + REMOVAL_WAIT
        pause = 0.05
        while await self._inspect_raw(cid) is not None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        return True

    async def inspect(self, cid: str) -> ContainerInfo | None:
        """The container's state, or None when it does not exist."""
        data = await self._inspect_raw(cid)
        return None if data is None else _info_from_inspect(data)

    async def stats(self, cid: str) -> ContainerStats:
        """A one-shot CPU and memory sample (zeros for a stopped container)."""
        async with self._guard(f"read the stats of container {_short(cid)}", extra=STATS_EXTRA):
            samples = await self._client().containers.container(cid).stats(stream=False)
        sample = _as_dict(samples[0] if samples else {})
        usage, limit = _memory_usage(sample)
        return ContainerStats(
            cpu_percent=_cpu_percent(sample), memory_usage=usage, memory_limit=limit
        )

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        """Every container carrying our lease label (of ``instance`` if given), in any state."""
        labels = [LABEL_LEASE]
        if instance is not None:
            labels.append(f"{LABEL_INSTANCE}={instance}")
        async with self._guard("list containers"):
            found = await self._client().containers.list(all=True, filters={"label": labels})
        fields = ("Id", "Names", "State", "Status", "Created", "Labels")
        return [_info_from_list({key: c[key] for key in fields if key in c}) for c in found]

    async def logs(
        self, cid: str, *, follow: bool, tail: int | str = "all"
    ) -> AsyncGenerator[str, None]:
        """The container's stdout and stderr as text lines (no trailing newline).

        With ``follow`` the stream outlives dropped connections: while the container runs it is
        reopened from the last timestamp seen; it ends once the container stops or is gone.
        """
        short = _short(cid)
        info = await self._inspect_raw(cid)
        if info is None:
            raise EngineError(f"container {short} does not exist")
        params: dict[str, str | bool] = {
            "stdout": True,
            "stderr": True,
            "timestamps": True,  # the reconnect cursor; stripped before lines are handed out
            "follow": follow,
            "tail": str(tail),
        }
        first_params = dict(params)
        opened_at = time.time()
        splitter = _LineSplitter()
        cursor = _LogCursor()
        pause = 0.0
        while True:
            running = bool(_as_dict(info.get("State")).get("Running"))
            is_tty = bool(_as_dict(info.get("Config")).get("Tty"))
            delivered = False
            frames = self._log_frames(cid, params, tty=is_tty, follow=follow)
            async with contextlib.aclosing(frames):
                async for stream, payload in frames:
                    key, text = _split_timestamp(payload)
                    if not cursor.accept(key):
                        continue
                    delivered = True
                    for line in splitter.feed(stream, text):
                        yield line
            # A follow stream ends when the container stops or the connection drops; only the
            # latter, seen as "it was running when we connected", calls for another round.
            if not follow or not running:
                break
            pause = 0.0 if delivered else min(max(pause * 2, 0.1), 2.0)
            if pause:
                await asyncio.sleep(pause)  # the daemon keeps closing at once: do not spin
            latest = await self._inspect_raw(cid)
            if latest is None:
                break
            info = latest
            since = cursor.rewind()
            params = dict(first_params)
            if since is not None:
                params["since"] = since
                params["tail"] = "all"
            elif str(tail) == "0":
                params["since"] = f"{opened_at:.9f}"
                params["tail"] = "all"
        for line in splitter.flush():
            yield line

    async def _log_frames(
        self, cid: str, params: dict[str, str | bool], *, tty: bool, follow: bool
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """(stream, payload) per log message of one connection (a dropped one ends a follow).

        aiodocker's own log helpers decode with errors="ignore" and hide the response, so this
        reads the raw stream through its request method and always closes the response.
        """
        client = self._client()
        t = self._settings.timeout
        # A followed stream may be silent for hours; a plain read must keep flowing.
        read = None if follow else t
        timeout = aiohttp.ClientTimeout(connect=t, sock_connect=t, sock_read=read)
        action = f"read the logs of container {_short(cid)}"
        async with self._guard(action):
            try:
                response = await client._do_query(
                    f"containers/{cid}/logs", "GET", params=params, timeout=timeout
                )
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    raise EngineError(f"container {_short(cid)} does not exist") from exc
                raise
        try:
            content = response.content
            if tty:
                # A TTY container's log is raw bytes; with timestamps, one message per line.
                pending = bytearray()
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        return
                    pending.extend(chunk)
                    while (end := pending.find(b"\n")) >= 0:
                        message = bytes(pending[: end + 1])
                        del pending[: end + 1]
                        yield 1, message
            else:
                while True:
                    try:
                        header = await content.readexactly(_FRAME_HEADER.size)
                    except asyncio.IncompleteReadError as exc:
                        if exc.partial:
                            raise
                        return  # the stream ended between two messages
                    stream, length = _FRAME_HEADER.unpack(header)
                    yield stream, await content.readexactly(length)
        except TimeoutError as exc:
            raise self._translate(exc, action, t) from exc
        except (
            asyncio.IncompleteReadError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientConnectionError,
        ) as exc:
            if follow:
                return  # a dropped connection: the caller resumes where it got to
            raise self._translate(exc, action, None) from exc
        finally:
            response.close()

    async def shell(self, cid: str, cmd: Sequence[str] = ("/bin/sh",)) -> int:
        """Run ``cmd`` in the container on this terminal; returns its exit code.

        On a terminal: a TTY exec, the local terminal in raw mode (restored afterwards) and the
        remote TTY sized like it. With piped stdin: no TTY, stdin is passed through and its end
        is passed on, stdout and stderr stay apart.
        """
        stdin_fd = _fileno(sys.stdin, 0)
        out = _binary(sys.stdout, sys.__stdout__)
        err = _binary(sys.stderr, sys.__stderr__)
        interactive = os.isatty(stdin_fd)
        env = [f"TERM={os.environ.get('TERM') or 'xterm'}"] if interactive else None
        action = f"open a shell in container {_short(cid)}"
        async with contextlib.AsyncExitStack() as stack:
            async with self._guard(action):
                try:
                    execution = (
                        await self._client()
                        .containers.container(cid)
                        .exec(list(cmd), stdin=True, tty=interactive, environment=env)
                    )
                except aiodocker.DockerError as exc:
                    if exc.status == 404:
                        raise EngineError(f"container {_short(cid)} does not exist") from exc
                    if exc.status == 409:
                        why = "is paused" if "paused" in exc.message else "is not running"
                        raise EngineError(f"container {_short(cid)} {why}") from exc
                    raise
                # Entering the Stream opens the hijacked connection (typed loosely upstream).
                stream = await stack.enter_async_context(
                    cast(contextlib.AbstractAsyncContextManager[Stream], execution.start())
                )
            reader = _InputReader(stdin_fd)
            stack.callback(reader.close)
            if interactive:
                saved = termios.tcgetattr(stdin_fd)
                stack.callback(termios.tcsetattr, stdin_fd, termios.TCSADRAIN, saved)
                tty.setraw(stdin_fd)
                await self._sync_size(execution, stdin_fd)
                self._watch_resize(stack, execution, stdin_fd)
            feeder = asyncio.create_task(self._feed_stdin(reader, stream))
            try:
                await self._drain_output(stream, out, err, action)
            finally:
                feeder.cancel()
                await asyncio.wait([feeder])
                if not feeder.cancelled() and feeder.exception() is not None:
                    raise self._translate(cast(BaseException, feeder.exception()), action, None)
        return await self._exit_code(execution, action)

    async def _feed_stdin(self, reader: _InputReader, stream: Stream) -> None:
        try:
            while data := await reader.read():
                await stream.write_in(data)
            _close_stdin(stream)
        except (ConnectionError, RuntimeError, aiohttp.ClientConnectionError):
            return  # the shell ended and the connection with it

    async def _drain_output(
        self, stream: Stream, out: BinaryIO, err: BinaryIO, action: str
    ) -> None:
        try:
            while (message := await stream.read_out()) is not None:
                target = err if message.stream == 2 else out
                target.write(message.data)
                target.flush()
        except (ConnectionError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            return  # the connection ended with the process; its exit code tells the rest
        except (aiodocker.DockerError, OSError) as exc:
            raise self._translate(exc, action, None) from exc

    async def _sync_size(self, execution: Exec, fd: int) -> None:
        size = _terminal_size(fd, _fileno(sys.stdout, 1))
        if size is None:
            return
        # A resize racing the process start, or a daemon refusing it, must not end the shell.
        with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError):
            async with asyncio.timeout(self._settings.timeout):
                await execution.resize(h=size.lines, w=size.columns)

    def _watch_resize(self, stack: contextlib.AsyncExitStack, execution: Exec, fd: int) -> None:
        """Follow local SIGWINCH, unless someone else (e.g. a TUI) owns that signal."""
        if signal.getsignal(signal.SIGWINCH) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def on_resize() -> None:
            task = loop.create_task(self._sync_size(execution, fd))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
        except (NotImplementedError, RuntimeError, ValueError):
            return  # not the main thread: the initial size has to do
        stack.callback(loop.remove_signal_handler, signal.SIGWINCH)

    async def _exit_code(self, execution: Exec, action: str) -> int:
        """The exec's exit code; the daemon may need a moment to record it after the stream ends."""
        deadline = time.monotonic() + self._settings.timeout
        pause = 0.02
        while True:
            async with self._guard(action):
                data = _as_dict(await execution.inspect())
            code = _as_int(data.get("ExitCode"))
            if not data.get("Running") and code is not None:
                return code
            if time.monotonic() >= deadline:
                raise EngineError(f"could not {action}: the shell did not report an exit code")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    # --- issue 16: non-interactive exec (self-contained; the lead moves it into the package) ---

    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult:
        """Run ``cmd`` in the container without a TTY or stdin; its output and exit code.

        stdout and stderr are kept apart, each up to :data:`EXEC_OUTPUT_LIMIT` bytes (the rest
        is read and dropped, and ``truncated`` set), so a chatty command cannot exhaust memory.
        """
        action = f"run a command in container {_short(cid)}"
        buffers = {1: bytearray(), 2: bytearray()}
        truncated = False
        async with contextlib.AsyncExitStack() as stack:
            async with self._guard(action):
                try:
                    execution = (
                        await self._client()
                        .containers.container(cid)
                        .exec(list(cmd), stdin=False, stdout=True, stderr=True, tty=False)
                    )
                except aiodocker.DockerError as exc:
                    if exc.status == 404:
                        raise EngineError(f"container {_short(cid)} does not exist") from exc
                    if exc.status == 409:
                        why = "is paused" if "paused" in exc.message else "is not running"
                        raise EngineError(f"container {_short(cid)} {why}") from exc
                    raise
                stream = await stack.enter_async_context(
                    cast(contextlib.AbstractAsyncContextManager[Stream], execution.start())
                )
            try:
                while (message := await stream.read_out()) is not None:
                    target = buffers[2 if message.stream == 2 else 1]
                    room = EXEC_OUTPUT_LIMIT - len(target)
                    if len(message.data) > room:
                        truncated = True
                    target.extend(message.data[: max(room, 0)])
            except (ConnectionError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
                pass  # the connection ended with the process; its exit code tells the rest
            except (aiodocker.DockerError, OSError) as exc:
                raise self._translate(exc, action, None) from exc
        code = await self._exit_code(execution, action)
        return ExecResult(code, bytes(buffers[1]), bytes(buffers[2]), truncated)


EXEC_OUTPUT_LIMIT: Final = 64 * 1024 * 1024
"""Bytes of stdout (and of stderr) :meth:`Engine.exec` keeps."""


@dataclass(frozen=True)
class ExecResult:
    """What a non-interactive command in a container did (:meth:`Engine.exec`)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    """Some output was dropped past :data:`EXEC_OUTPUT_LIMIT`."""
