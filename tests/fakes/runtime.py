"""FakeRuntime: the :class:`~containerlease_tui.ports.Runtime` protocol in memory.

It behaves like :class:`~containerlease_tui.engine.Engine` over Docker, down to the error
classes and messages, as ``tests/contract/test_runtime_contract.py`` checks against both:
containers with names, labels and states (``created``, ``running``, ``exited``), their logs and
exit codes; images that are local, pullable from :attr:`FakeRuntime.registry` (with the progress
reports a pull sends) or not to be had (the pull fails with :class:`ImageUnavailable`).

A container's command is "run" by a tiny interpreter of the shell scripts the tests use
(``/bin/sh -c "…"`` with ``echo``, ``echo … >&2``, ``exit N``, ``trap``, ``sleep`` and ``while``
loops): the ``echo`` lines become its output; a script with a ``sleep`` or a loop keeps running,
one that runs out exits with its code; ``stop`` ends it with 0 when it traps TERM, else 143.
``exec`` runs the same interpreter (a ``sleep`` returns at once) unless :attr:`exec_handler` says
otherwise.

Test controls (not in the protocol): :attr:`down`, :attr:`present`, :attr:`registry`,
:attr:`pull_gate` (a pull waits for it, after its progress reports), :meth:`add_container` and
:meth:`feed` (more output of a running container), :attr:`shells` (the shells opened).
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import re
import secrets
import shlex
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from containerlease_tui.engine import (
    LABEL_INSTANCE,
    LABEL_LEASE,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineError,
    EngineUnavailable,
    ExecResult,
    HostInfo,
    ImageUnavailable,
    PullProgress,
    VolumeInfo,
)

VERSION = "27.5.1"
# As the real engine: an image seen present is taken as present this long without a lookup.
SEEN_TTL = 30.0
# Docker's reference grammar, roughly: lower-case repository path, optional tag or digest.
_REFERENCE = re.compile(
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_ALIVE = frozenset({"running", "paused", "restarting"})


def _short(cid: str) -> str:
    return cid[:12] if re.fullmatch(r"[0-9a-f]{64}", cid) else cid


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Run:
    """What a script does when run: its output lines, and whether (and how) it ends."""

    out: list[tuple[int, str]] = field(default_factory=list)  # (stream, line)
    keeps_running: bool = False
    exit_code: int = 0
    traps_term: bool = False


def _interpret(cmd: Sequence[str] | None) -> _Run:
    """Run the little shell language the tests' containers speak."""
    run = _Run()
    if not cmd:
        run.keeps_running = True  # the image's own command: a long-running service
        return run
    if len(cmd) >= 3 and cmd[0] in ("/bin/sh", "sh") and cmd[1] == "-c":
        script = cmd[2]
    else:
        script = shlex.join(cmd)
    if "while" in script.split():
        run.keeps_running = True
    for statement in re.split(r"[;\n]|&&", script):
        words = statement.strip()
        if not words:
            continue
        try:
            argv = shlex.split(words)
        except ValueError:
            argv = words.split()
        if not argv:
            continue
        name = argv[0]
        if name == "trap":
            run.traps_term = "TERM" in argv[2:]
        elif name == "echo":
            stream = 1
            args = argv[1:]
            if args and args[-1] in (">&2", "1>&2"):
                stream, args = 2, args[:-1]
            run.out.append((stream, " ".join(args)))
        elif name == "exit":
            run.exit_code = int(argv[1]) if len(argv) > 1 else 0
            run.keeps_running = False
            return run
        elif name == "sleep":
            run.keeps_running = True
        elif name in ("true", ":"):
            run.exit_code = 0
        elif name == "false":
            run.exit_code = 1
        elif (
            name in ("while", "do", "done", "wait", "i=$(cat", "cat")
            or "=" in name
            or name.startswith("$")
        ):
            continue
        else:
            run.out.append((2, f"sh: {name}: not found"))
            run.exit_code = 127
    return run


@dataclass
class _Container:
    id: str
    name: str
    image_ref: str
    cmd: list[str] | None
    labels: dict[str, str]
    memory: int
    state: str = "created"
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    health: str | None = None
    """The health check's verdict while it runs (:meth:`FakeRuntime.set_health`)."""
    logs: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    traps_term: bool = False
    ports: list[str] = field(default_factory=list)
    publish_address: str = "127.0.0.1"
    published: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[tarfile.TarInfo, bytes]] = field(default_factory=dict)
    """Paths copied in with :meth:`FakeRuntime.put_archive` (folders with empty content)."""

    def touch(self) -> None:
        """Wake log followers (more output, or the state changed)."""
        self.changed.set()
        self.changed = asyncio.Event()


class FakeRuntime:
    """Containers and images in one process's memory."""

    def __init__(
        self,
        *,
        present: set[str] | None = None,
        registry: dict[str, list[PullProgress]] | None = None,
        version: str = VERSION,
    ) -> None:
        self.down: str | None = None
        """When set, every call raises :class:`EngineUnavailable` with this message."""
        self.present: set[str] = set(present or ())
        """Image references the engine has locally."""
        self.registry: dict[str, list[PullProgress]] = dict(registry or {})
        """Pullable image references, each with the progress reports its pull sends."""
        self.pull_gate = asyncio.Event()
        """A pull (after its progress reports) waits until this is set; set from the start."""
        self.pull_gate.set()
        self.exec_handler: Callable[[_Container, list[str]], ExecResult] | None = None
        """Answers :meth:`exec` instead of the interpreter, when set."""
        self.shells: list[tuple[str, list[str]]] = []
        self.shell_exit = 0
        self.version = version
        self.host = HostInfo(cpus=4, memory=8 * 1024**3)
        """What :meth:`host_info` answers (a test may set another)."""
        self.containers: dict[str, _Container] = {}
        self.volumes: dict[str, VolumeInfo] = {}
        self._seen: dict[str, float] = {}
        self.closed = False

    # --- test controls ---------------------------------------------------------------------

    def add_container(
        self,
        cid: str,
        name: str,
        *,
        image_ref: str,
        labels: dict[str, str],
        state: str = "running",
        logs: Sequence[str] = (),
        created_at: datetime | None = None,
        started_at: datetime | None = None,
        exit_code: int | None = None,
    ) -> None:
        """A container that exists already when a test starts (it traps TERM)."""
        self.containers[cid] = _Container(
            id=cid,
            name=name,
            image_ref=image_ref,
            cmd=None,
            labels=dict(labels),
            memory=0,
            state=state,
            created_at=created_at or _now(),
            started_at=started_at or (created_at if state != "created" else None),
            exit_code=exit_code if state == "exited" else None,
            logs=list(logs),
            traps_term=True,
        )

    def feed(self, cid: str, *lines: str) -> None:
        """More output of container ``cid`` (read by a following :meth:`logs`)."""
        container = self.containers[cid]
        container.logs.extend(lines)
        container.touch()

    def kill(self, cid: str, exit_code: int = 137, *, oom: bool = False) -> None:
        """The container's process dies behind everybody's back (``docker kill``: 137, an
        OOM kill with ``oom``, a command that fails): exited with ``exit_code``, the container
        stays."""
        container = self.containers[cid]
        container.state, container.exit_code = "exited", exit_code
        container.oom_killed = oom
        container.touch()

    def set_health(self, cid: str, health: str | None) -> None:
        """The container's health check says ``starting``, ``healthy`` or ``unhealthy`` (None:
        it has none); reported, as Docker does, while the container runs."""
        self.containers[cid].health = health

    # --- plumbing --------------------------------------------------------------------------

    def _check(self) -> None:
        if self.down is not None:
            raise EngineUnavailable(self.down)

    def _get(self, cid: str, action: str) -> _Container:
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"could not {action}: the container does not exist")
        return container

    def _run(self, container: _Container) -> None:
        run = _interpret(container.cmd)
        container.logs.extend(line for _stream, line in run.out)
        container.traps_term = container.traps_term or run.traps_term
        container.started_at = _now()
        used = {w.rsplit(":", 1)[1] for c in self.containers.values() for w in c.published.values()}
        container.published = {}
        for port in container.ports:
            number = 32768
            while str(number) in used:
                number += 1
            used.add(str(number))
            container.published[port] = f"{container.publish_address}:{number}"
        container.oom_killed = False  # as Docker: a (re)start clears State.OOMKilled
        if run.keeps_running:
            container.state, container.exit_code = "running", None
        else:
            container.state, container.exit_code = "exited", run.exit_code
        container.touch()

    # --- the protocol ----------------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True

    async def ping(self) -> str:
        self._check()
        return self.version

    async def host_info(self) -> HostInfo:
        self._check()
        return self.host

    async def image_present(self, ref: str) -> bool:
        self._check()
        if not _REFERENCE.match(ref):
            raise ImageUnavailable(
                f"{ref} is not a valid image reference: invalid reference format"
            )
        return ref in self.present

    async def image_seen(self, ref: str) -> bool:
        seen = self._seen.get(ref)
        if seen is not None and time.monotonic() - seen < SEEN_TTL:
            return True
        present = await self.image_present(ref)
        if present:
            self._seen[ref] = time.monotonic()
        return present

    async def ensure_image(
        self, ref: str, on_progress: Callable[[PullProgress], None] | None = None
    ) -> None:
        if await self.image_present(ref):
            return
        failed = f"image {ref} is not available locally and could not be pulled"
        reports = self.registry.get(ref)
        if reports is None:
            host = ref.split("/", 1)[0] if "/" in ref else ""
            if "." in host or ":" in host:
                raise ImageUnavailable(f"{failed}: cannot resolve registry {host}")
            raise ImageUnavailable(
                f"{failed}: access denied (the image does not exist or needs a registry login)"
            )
        for report in reports:
            if on_progress is not None:
                on_progress(report)
        await self.pull_gate.wait()
        self._check()
        self.present.add(ref)

    async def create(self, spec: ContainerSpec) -> str:
        self._check()
        if any(c.name == spec.name for c in self.containers.values()):
            raise EngineError(f"a container named {spec.name} already exists")
        if spec.image_ref not in self.present:
            self._seen.pop(spec.image_ref, None)
            raise ImageUnavailable(f"image {spec.image_ref} is not available locally")
        cid = secrets.token_hex(32)
        self.containers[cid] = _Container(
            id=cid,
            name=spec.name,
            image_ref=spec.image_ref,
            cmd=list(spec.cmd) if spec.cmd else None,
            labels=dict(spec.labels),
            memory=spec.memory,
            ports=list(spec.ports),
            publish_address=spec.publish_address,
            volumes=dict(spec.volumes),
        )
        for name in spec.volumes:  # as Docker: a volume mount makes the volume if missing
            self.volumes.setdefault(name, VolumeInfo(name, {}, _now()))
        return cid

    async def start(self, cid: str) -> None:
        self._check()
        container = self._get(cid, f"start container {_short(cid)}")
        if container.state not in _ALIVE:
            self._run(container)

    async def stop(self, cid: str, timeout: int = 5) -> None:  # noqa: ASYNC109
        self._check()
        container = self._get(cid, f"stop container {_short(cid)}")
        if container.state in _ALIVE:
            container.state = "exited"
            container.exit_code = 0 if container.traps_term else 143
            container.published = {}
            container.touch()

    async def restart(self, cid: str) -> None:
        self._check()
        container = self._get(cid, f"restart container {_short(cid)}")
        if container.state in _ALIVE:
            container.state = "exited"
        self._run(container)

    async def remove(self, cid: str) -> bool:
        self._check()
        container = self.containers.pop(cid, None)
        if container is not None:
            container.state = "removed"
            container.touch()
        return True

    async def inspect(self, cid: str) -> ContainerInfo | None:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            return None
        return ContainerInfo(
            id=container.id,
            name=container.name,
            state=container.state,
            running=container.state in _ALIVE,
            health=container.health if container.state in _ALIVE else None,
            started_at=container.started_at,
            created_at=container.created_at,
            exit_code=container.exit_code if container.state in ("exited", "dead") else None,
            labels=dict(container.labels),
            ports=dict(container.published) if container.state in _ALIVE else {},
            oom_killed=container.oom_killed and container.state in ("exited", "dead"),
        )

    async def stats(self, cid: str) -> ContainerStats:
        self._check()
        container = self._get(cid, f"read the stats of container {_short(cid)}")
        if container.state not in _ALIVE:
            return ContainerStats(cpu_percent=0.0, memory_usage=0, memory_limit=0)
        return ContainerStats(cpu_percent=0.0, memory_usage=1024**2, memory_limit=container.memory)

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        self._check()
        found: list[ContainerInfo] = []
        for container in self.containers.values():
            if LABEL_LEASE not in container.labels:
                continue
            if instance is not None and container.labels.get(LABEL_INSTANCE) != instance:
                continue
            # The list endpoint's summary: seconds only, no start time.
            created = container.created_at.replace(microsecond=0)
            found.append(
                ContainerInfo(
                    id=container.id,
                    name=container.name,
                    state=container.state,
                    running=container.state in _ALIVE,
                    health=container.health if container.state in _ALIVE else None,
                    started_at=None,
                    created_at=created,
                    exit_code=container.exit_code if container.state == "exited" else None,
                    labels=dict(container.labels),
                    # As the engine: an exit with 137 is inspected to tell an OOM kill.
                    oom_killed=container.oom_killed
                    and container.state == "exited"
                    and container.exit_code == 137,
                )
            )
        return found

    async def logs(self, cid: str, *, follow: bool, tail: int | str = "all") -> AsyncIterator[str]:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"container {_short(cid)} does not exist")
        lines = container.logs
        start = 0 if str(tail) == "all" else max(len(lines) - max(int(tail), 0), 0)
        position = start
        while True:
            while position < len(lines):
                yield lines[position]
                position += 1
            if not follow or container.state not in _ALIVE:
                return
            await container.changed.wait()

    async def shell(self, cid: str, cmd: Sequence[str] = ("/bin/sh",)) -> int:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"container {_short(cid)} does not exist")
        if container.state not in _ALIVE:
            raise EngineError(f"container {_short(cid)} is not running")
        self.shells.append((cid, list(cmd)))
        return self.shell_exit

    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"container {_short(cid)} does not exist")
        if container.state not in _ALIVE:
            raise EngineError(f"container {_short(cid)} is not running")
        if self.exec_handler is not None:
            return self.exec_handler(container, list(cmd))
        run = _interpret(cmd)
        out = b"".join(f"{line}\n".encode() for stream, line in run.out if stream == 1)
        err = b"".join(f"{line}\n".encode() for stream, line in run.out if stream == 2)
        return ExecResult(run.exit_code, out, err)

    # --- named volumes -----------------------------------------------------------------------

    def _users(self, name: str) -> tuple[str, ...]:
        return tuple(c.id for c in self.containers.values() if name in c.volumes)

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo:
        self._check()
        if name not in self.volumes:
            self.volumes[name] = VolumeInfo(name, dict(labels), _now())
        found = self.volumes[name]
        return VolumeInfo(found.name, dict(found.labels), found.created_at)

    async def inspect_volume(self, name: str) -> VolumeInfo | None:
        self._check()
        found = self.volumes.get(name)
        if found is None:
            return None
        return VolumeInfo(found.name, dict(found.labels), found.created_at, None, self._users(name))

    async def list_volumes(self, label: list[str]) -> list[VolumeInfo]:
        self._check()
        found: list[VolumeInfo] = []
        for volume in self.volumes.values():
            matches = True
            for wanted in label:
                key, sep, value = wanted.partition("=")
                if key not in volume.labels or (sep and volume.labels[key] != value):
                    matches = False
            if matches:
                found.append(
                    VolumeInfo(
                        volume.name,
                        dict(volume.labels),
                        volume.created_at,
                        0,
                        self._users(volume.name),
                    )
                )
        return found

    async def remove_volume(self, name: str) -> bool:
        self._check()
        if name not in self.volumes:
            return False
        if self._users(name):
            raise EngineError(f"volume {name} is in use by a container")
        del self.volumes[name]
        return True

    # --- copying files -----------------------------------------------------------------------

    _FOLDERS = frozenset({"/", "/tmp", "/root", "/etc", "/bin"})

    def _is_folder(self, container: _Container, path: str) -> bool:
        path = posixpath.normpath(path)
        if path in self._FOLDERS:
            return True
        entry = container.files.get(path)
        return entry is not None and entry[0].isdir()

    async def put_archive(self, cid: str, path: str, data: bytes) -> None:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"container {_short(cid)} does not exist")
        if not self._is_folder(container, path):
            if posixpath.normpath(path) in container.files:
                raise EngineError(f"{path} is not a directory in the container")
            raise EngineError(f"{path} does not exist in container {_short(cid)}")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                target = posixpath.normpath(posixpath.join(path, member.name))
                handle = tar.extractfile(member) if member.isreg() else None
                container.files[target] = (member, handle.read() if handle else b"")

    async def get_archive(
        self,
        cid: str,
        path: str,
        *,
        limit: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> bytes:
        self._check()
        container = self.containers.get(cid)
        if container is None:
            raise EngineError(f"container {_short(cid)} does not exist")
        path = posixpath.normpath(path)
        chosen = {p: e for p, e in container.files.items() if p == path or p.startswith(path + "/")}
        if not chosen:
            raise EngineError(f"{path} does not exist in container {_short(cid)}")
        base = posixpath.dirname(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for where in sorted(chosen):
                info, content = chosen[where]
                copy = info.replace(name=posixpath.relpath(where, base), deep=False)
                tar.addfile(copy, io.BytesIO(content) if copy.isreg() else None)
        data = buffer.getvalue()
        if len(data) > limit:
            raise EngineError(
                f"{path} is larger than the copy limit of {limit} bytes ([limits] max_copy_bytes)"
            )
        if on_progress is not None:
            on_progress(len(data))
        return data
