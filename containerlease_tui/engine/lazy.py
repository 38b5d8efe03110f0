""":class:`LazyEngine`: an :class:`~containerlease_tui.engine.client.Engine` made on first use.

aiodocker and aiohttp take a third of a CLI command's start-up to import. A command that only
talks to Redis (``ls``, ``status``, ``extend``) never touches the engine, so the service's
runtime is this stand-in: it imports the engine (and aiodocker with it) the first time a method
is called, and closing one that was never used costs nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from containerlease_tui.config import DockerSettings
from containerlease_tui.engine.types import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecResult,
    HostInfo,
    PullProgress,
    VolumeInfo,
)

if TYPE_CHECKING:
    from containerlease_tui.engine.client import Engine


class LazyEngine:
    """A :class:`~containerlease_tui.engine.protocol.Runtime` that makes its Engine on first use."""

    def __init__(self, settings: DockerSettings) -> None:
        self._settings = settings
        self._engine: Engine | None = None

    @property
    def loaded(self) -> bool:
        """Whether the real engine (and aiodocker) has been made."""
        return self._engine is not None

    def engine(self) -> Engine:
        """The real engine, made now if it was not yet."""
        if self._engine is None:
            from containerlease_tui.engine.client import Engine

            self._engine = Engine(self._settings)
        return self._engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.close()

    async def ping(self) -> str:
        return await self.engine().ping()

    async def image_present(self, ref: str) -> bool:
        return await self.engine().image_present(ref)

    async def image_seen(self, ref: str) -> bool:
        return await self.engine().image_seen(ref)

    async def ensure_image(
        self, ref: str, on_progress: Callable[[PullProgress], None] | None = None
    ) -> None:
        await self.engine().ensure_image(ref, on_progress)

    async def create(self, spec: ContainerSpec) -> str:
        return await self.engine().create(spec)

    async def start(self, cid: str) -> None:
        await self.engine().start(cid)

    async def stop(self, cid: str, timeout: int | None = None) -> None:  # noqa: ASYNC109
        if timeout is None:
            await self.engine().stop(cid)
        else:
            await self.engine().stop(cid, timeout)

    async def restart(self, cid: str) -> None:
        await self.engine().restart(cid)

    async def remove(self, cid: str) -> bool:
        return await self.engine().remove(cid)

    async def inspect(self, cid: str) -> ContainerInfo | None:
        return await self.engine().inspect(cid)

    async def stats(self, cid: str) -> ContainerStats:
        return await self.engine().stats(cid)

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        return await self.engine().list_leased(instance)

    def logs(self, cid: str, *, follow: bool, tail: int | str = "all") -> AsyncIterator[str]:
        return self.engine().logs(cid, follow=follow, tail=tail)

    async def shell(self, cid: str, cmd: Sequence[str] | None = None) -> int:
        if cmd is None:
            return await self.engine().shell(cid)
        return await self.engine().shell(cid, cmd)

    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult:
        return await self.engine().exec(cid, cmd)

    async def host_info(self) -> HostInfo:
        return await self.engine().host_info()

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo:
        return await self.engine().ensure_volume(name, labels)

    async def inspect_volume(self, name: str) -> VolumeInfo | None:
        return await self.engine().inspect_volume(name)

    async def list_volumes(self, label: list[str]) -> list[VolumeInfo]:
        return await self.engine().list_volumes(label)

    async def remove_volume(self, name: str) -> bool:
        return await self.engine().remove_volume(name)

    async def put_archive(self, cid: str, path: str, data: bytes) -> None:
        await self.engine().put_archive(cid, path, data)

    async def get_archive(
        self,
        cid: str,
        path: str,
        *,
        limit: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> bytes:
        return await self.engine().get_archive(cid, path, limit=limit, on_progress=on_progress)
