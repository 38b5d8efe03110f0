"""The :class:`Engine`: the Docker calls ContainerLease makes (create, start, stop, remove,
inspect, list, pull, logs, shell, exec), each bounded by the configured timeout and failing only
with an :class:`EngineError`. The protocols behind the longer calls live in their own modules:
:mod:`.pull`, :mod:`.logs`, :mod:`.execs` and :mod:`.shell`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from typing import Final

import aiodocker
from aiodocker.types import JSONValue

from containerlease_tui.config import DockerSettings
from containerlease_tui.engine import archive as _archive
from containerlease_tui.engine import volumes as _volumes
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError, ImageUnavailable
from containerlease_tui.engine.execs import run_exec
from containerlease_tui.engine.logs import read_logs
from containerlease_tui.engine.parse import (
    as_dict,
    as_int,
    as_str,
    cpu_percent,
    info_from_inspect,
    info_from_list,
    memory_usage,
    short_id,
)
from containerlease_tui.engine.pull import pull
from containerlease_tui.engine.shell import ShellSession, open_shell, run_shell
from containerlease_tui.engine.types import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecResult,
    HostInfo,
    PullProgress,
    VolumeInfo,
)
from containerlease_tui.labels import label_filter

# Seconds between SIGTERM and SIGKILL when stopping or restarting.
STOP_GRACE: Final = 5
# A removal already under way in the daemon (409) is waited out for this long.
REMOVAL_WAIT: Final = 10.0
# Docker sends one-shot stats after sampling twice, about a second apart.
STATS_EXTRA: Final = 3.0
# An image seen present is taken as present for this long (see Engine.image_seen): a burst of
# provisions then costs the engine no lookup per container.
IMAGE_SEEN_TTL: Final = 30.0


def create_body(spec: ContainerSpec) -> dict[str, JSONValue]:
    """The ``containers/create`` body: a hardened HostConfig, whatever the image asks for."""
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
    if spec.workdir:
        config["WorkingDir"] = spec.workdir
    if spec.ports:
        # Exposed and published at a port the engine picks ("HostPort": ""), on one address.
        config["ExposedPorts"] = {port: {} for port in spec.ports}
        host_config["PortBindings"] = {
            port: [{"HostIp": spec.publish_address, "HostPort": ""}] for port in spec.ports
        }
    if spec.volumes:
        # Mounts, not Binds: a "volume" mount's source can only ever be a volume, never a path.
        host_config["Mounts"] = [
            {"Type": "volume", "Source": name, "Target": target, "ReadOnly": False}
            for name, target in spec.volumes.items()
        ]
    return config


OOM_EXIT_CODE: Final = 137
"""How a process the OOM killer ended exits (128 + SIGKILL)."""


class Engine:
    """The Docker engine as ContainerLease uses it: leased containers, their logs and shells.

    One aiodocker client per Engine, created on first use and closed by :meth:`close`.
    """

    def __init__(self, settings: DockerSettings) -> None:
        self._settings = settings
        self._conn = Connection(settings)
        self._seen: dict[str, float] = {}  # image ref → monotonic time it was last seen present

    async def close(self) -> None:
        """Close the HTTP session; the Engine may be used again afterwards (it reconnects)."""
        await self._conn.close()

    async def ping(self) -> str:
        """The engine's version, or EngineUnavailable."""
        async with self._conn.guard("talk to the Docker engine"):
            version = as_dict(await self._conn.client().version())
        return as_str(version.get("Version")) or "unknown"

    async def host_info(self) -> HostInfo:
        """The engine machine's CPUs and memory (``/info``: ``NCPU``, ``MemTotal``)."""
        async with self._conn.guard("talk to the Docker engine"):
            info = as_dict(await self._conn.client().system.info())
        return HostInfo(
            cpus=as_int(info.get("NCPU")) or 0, memory=as_int(info.get("MemTotal")) or 0
        )

    # --- images --------------------------------------------------------------------------

    async def image_present(self, ref: str) -> bool:
        """Whether the engine has ``ref`` locally."""
        async with self._conn.guard(f"look up image {ref}"):
            try:
                await self._conn.client().images.inspect(ref)
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
        await pull(self._conn, ref, on_progress)
        if not await self.image_present(ref):
            raise ImageUnavailable(
                f"image {ref} is not available locally and could not be pulled: "
                "the engine reported success but does not have it"
            )

    # --- container lifecycle -------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; returns its id."""
        async with self._conn.guard(f"create container {spec.name}"):
            try:
                container = await self._conn.client().containers.create(
                    create_body(spec), name=spec.name
                )
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
        async with self._conn.guard(f"start container {short_id(cid)}"):
            await self._conn.client().containers.container(cid).start()

    async def stop(self, cid: str, timeout: int = STOP_GRACE) -> None:  # noqa: ASYNC109
        """Stop the container: SIGTERM, then SIGKILL after ``timeout`` seconds (a grace period)."""
        async with self._conn.guard(f"stop container {short_id(cid)}", extra=timeout):
            await self._conn.client().containers.container(cid).stop(t=timeout)

    async def restart(self, cid: str) -> None:
        """Restart the container, stopping it as :meth:`stop` does."""
        async with self._conn.guard(f"restart container {short_id(cid)}", extra=STOP_GRACE):
            await self._conn.client().containers.container(cid).restart(t=STOP_GRACE)

    async def remove(self, cid: str) -> bool:
        """Force-remove the container and its anonymous volumes; True once it no longer exists.

        A container that is already gone counts as removed; a removal already under way in the
        daemon is waited out (up to :data:`REMOVAL_WAIT`), and False means it is still there.
        """
        async with self._conn.guard(f"remove container {short_id(cid)}"):
            try:
                await self._conn.client().containers.container(cid).delete(force=True, v=True)
                return True
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return True
                if "already in progress" not in exc.message:
                    raise
        deadline = time.monotonic() + REMOVAL_WAIT
        pause = 0.05
        while await self._conn.inspect_raw(cid) is not None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        return True

    # --- reading state -------------------------------------------------------------------

    async def inspect(self, cid: str) -> ContainerInfo | None:
        """The container's state, or None when it does not exist."""
        data = await self._conn.inspect_raw(cid)
        return None if data is None else info_from_inspect(data)

    async def stats(self, cid: str) -> ContainerStats:
        """A one-shot CPU and memory sample (zeros for a stopped container)."""
        action = f"read the stats of container {short_id(cid)}"
        async with self._conn.guard(action, extra=STATS_EXTRA):
            samples = await self._conn.client().containers.container(cid).stats(stream=False)
        sample = as_dict(samples[0] if samples else {})
        usage, limit = memory_usage(sample)
        return ContainerStats(
            cpu_percent=cpu_percent(sample), memory_usage=usage, memory_limit=limit
        )

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        """Every container carrying our lease label (of ``instance`` if given), in any state."""
        async with self._conn.guard("list containers"):
            found = await self._conn.client().containers.list(
                all=True, filters={"label": label_filter(instance)}
            )
        fields = ("Id", "Names", "State", "Status", "Created", "Labels")
        infos = [info_from_list({key: c[key] for key in fields if key in c}) for c in found]
        return [await self._with_oom(info) for info in infos]

    async def _with_oom(self, info: ContainerInfo) -> ContainerInfo:
        """``info`` with ``oom_killed`` (the listing does not say): an exit with 137 (SIGKILL)
        is looked up, since an OOM kill looks just like a ``docker kill`` there."""
        if info.exit_code != OOM_EXIT_CODE or info.state not in ("exited", "dead"):
            return info
        try:
            full = await self.inspect(info.id)
        except EngineError:
            return info  # gone meanwhile, or the engine hiccuped: the summary stands
        if full is None or not full.oom_killed:
            return info
        return replace(info, oom_killed=True)

    # --- streams -------------------------------------------------------------------------

    def logs(self, cid: str, *, follow: bool, tail: int | str = "all") -> AsyncGenerator[str, None]:
        """The container's stdout and stderr as text lines (no trailing newline).

        With ``follow`` the stream outlives dropped connections: while the container runs it is
        reopened from the last timestamp seen; it ends once the container stops or is gone.
        See :func:`.logs.read_logs`.
        """
        return read_logs(self._conn, cid, follow=follow, tail=tail)

    async def shell(self, cid: str, cmd: Sequence[str] = ("/bin/sh",)) -> int:
        """Run ``cmd`` in the container on this terminal; returns its exit code.

        See :func:`.shell.run_shell`.
        """
        return await run_shell(self._conn, cid, cmd)

    async def open_shell(
        self,
        stack: contextlib.AsyncExitStack,
        cid: str,
        cmd: Sequence[str],
        *,
        tty: bool,
        term: str = "xterm",
    ) -> ShellSession:
        """A shell for a remote terminal (the daemon's); closed with ``stack``.

        See :func:`.shell.open_shell`.
        """
        return await open_shell(self._conn, stack, cid, cmd, tty=tty, term=term)

    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult:
        """Run ``cmd`` in the container without a TTY or stdin; its output and exit code.

        See :func:`.execs.run_exec`.
        """
        return await run_exec(self._conn, cid, cmd)

    # --- named volumes (see engine/volumes.py) -----------------------------------------------

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo:
        """Create volume ``name`` with ``labels``, or find it as it is (labels unchanged)."""
        return await _volumes.ensure_volume(self._conn, name, labels)

    async def inspect_volume(self, name: str) -> VolumeInfo | None:
        """Volume ``name`` and the containers that mount it, or None when there is none."""
        return await _volumes.inspect_volume(self._conn, name)

    async def list_volumes(self, label: list[str]) -> list[VolumeInfo]:
        """The volumes carrying every label of ``label``, with size and users."""
        return await _volumes.list_volumes(self._conn, label)

    async def remove_volume(self, name: str) -> bool:
        """Remove volume ``name`` (False: it did not exist); refused while in use."""
        return await _volumes.remove_volume(self._conn, name)

    # --- copying files (see engine/archive.py) -----------------------------------------------

    async def put_archive(self, cid: str, path: str, data: bytes) -> None:
        """Unpack the tar ``data`` into folder ``path`` of the container (running or not)."""
        await _archive.put_archive(self._conn, cid, path, data)

    async def get_archive(
        self,
        cid: str,
        path: str,
        *,
        limit: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> bytes:
        """The tar of ``path`` in the container (running or not), at most ``limit`` bytes."""
        return await _archive.get_archive(
            self._conn, cid, path, limit=limit, on_progress=on_progress
        )
