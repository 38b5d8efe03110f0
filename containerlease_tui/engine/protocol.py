"""``Runtime``: exactly the engine calls the lease service (``leases.py``) and the reaper
(``reaper.py``) make, and nothing else, so either can run on any container runtime (or a test
double) that provides them. :class:`~containerlease_tui.engine.client.Engine` satisfies it
(checked statically in ``engine/__init__.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from containerlease_tui.engine.types import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecResult,
    HostInfo,
    PullProgress,
    VolumeInfo,
)


class Runtime(Protocol):
    """The container runtime as the lease service and the reaper use it.

    Every method fails only with an ``EngineError`` (``EngineUnavailable`` when the runtime
    cannot be reached, ``ImageUnavailable`` for images).
    """

    # --- the connection (service, reaper) ---
    async def close(self) -> None: ...
    async def ping(self) -> str: ...
    async def host_info(self) -> HostInfo: ...  # the box's CPUs and memory (service: capacity)

    # --- images (service) ---
    async def image_present(self, ref: str) -> bool: ...
    async def image_seen(self, ref: str) -> bool: ...
    async def ensure_image(
        self, ref: str, on_progress: Callable[[PullProgress], None] | None = None
    ) -> None: ...

    # --- lifecycle (service; the reaper removes) ---
    async def create(self, spec: ContainerSpec) -> str: ...
    async def start(self, cid: str) -> None: ...
    async def stop(self, cid: str, timeout: int = ...) -> None: ...  # noqa: ASYNC109
    async def restart(self, cid: str) -> None: ...
    async def remove(self, cid: str) -> bool: ...

    # --- state (service; the reaper inspects and lists) ---
    async def inspect(self, cid: str) -> ContainerInfo | None: ...
    async def stats(self, cid: str) -> ContainerStats: ...
    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]: ...

    # --- streams (service) ---
    def logs(self, cid: str, *, follow: bool, tail: int | str = "all") -> AsyncIterator[str]: ...
    async def shell(self, cid: str, cmd: Sequence[str] = ...) -> int: ...
    async def exec(self, cid: str, cmd: Sequence[str]) -> ExecResult: ...

    # --- named volumes (service) ---
    async def ensure_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo: ...
    async def inspect_volume(self, name: str) -> VolumeInfo | None: ...
    async def list_volumes(self, label: list[str]) -> list[VolumeInfo]: ...
    async def remove_volume(self, name: str) -> bool: ...

    # --- copying files (service) ---
    async def put_archive(self, cid: str, path: str, data: bytes) -> None: ...
    async def get_archive(
        self,
        cid: str,
        path: str,
        *,
        limit: int,
        on_progress: Callable[[int], None] | None = ...,
    ) -> bytes: ...
