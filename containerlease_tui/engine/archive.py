"""Copying files into and out of a container through the engine's archive API
(``PUT``/``GET /containers/{id}/archive``): it works on stopped containers and on images without
a shell, since nothing runs in the container. What goes in and comes out is a tar archive; making
and unpacking it safely on the host is :mod:`containerlease_tui.archive`'s job."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import aiodocker
import aiohttp

from containerlease_tui.engine import _compat
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.parse import one_line, short_id

CHUNK = 256 * 1024


def _missing(exc: aiodocker.DockerError, cid: str, path: str) -> EngineError | None:
    if exc.status != 404:
        return None
    if "no such container" in exc.message.lower():
        return EngineError(f"container {short_id(cid)} does not exist")
    return EngineError(f"{path} does not exist in container {short_id(cid)}")


async def put_archive(conn: Connection, cid: str, path: str, data: bytes) -> None:
    """Unpack the tar ``data`` into directory ``path`` of the container (which must exist)."""
    # A large archive takes its time on the wire: a second of grace per 8 MiB.
    async with conn.guard(f"copy into container {short_id(cid)}", extra=len(data) / 2**23):
        try:
            await _compat.put_archive(conn.client(), cid, path, data)
        except aiodocker.DockerError as exc:
            missing = _missing(exc, cid, path)
            if missing is not None:
                raise missing from exc
            if exc.status == 400 and "not a directory" in exc.message.lower():
                raise EngineError(f"{path} is not a directory in the container") from exc
            raise


async def get_archive(
    conn: Connection,
    cid: str,
    path: str,
    *,
    limit: int,
    on_progress: Callable[[int], None] | None = None,
) -> bytes:
    """The tar archive of ``path`` in the container (a file or a folder, under its own name);
    more than ``limit`` bytes is refused, with nothing kept."""
    t = conn.timeout
    timeout = aiohttp.ClientTimeout(connect=t, sock_connect=t, sock_read=t)
    action = f"copy out of container {short_id(cid)}"
    async with conn.guard(action):
        try:
            response = await _compat.raw_get(
                conn.client(), f"containers/{cid}/archive", params={"path": path}, timeout=timeout
            )
        except aiodocker.DockerError as exc:
            missing = _missing(exc, cid, path)
            if missing is not None:
                raise missing from exc
            raise
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                raise EngineError(
                    f"{path} is larger than the copy limit of {limit} bytes "
                    "([limits] max_copy_bytes)"
                )
            chunks.append(chunk)
            if on_progress is not None:
                on_progress(size)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise EngineError(
            f"could not {action}: {one_line(str(exc)) or type(exc).__name__}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            response.release()
    return b"".join(chunks)
