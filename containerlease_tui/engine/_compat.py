"""The one module that touches aiodocker's private API (its pinned range: see pyproject.toml).

Everything else in the engine uses aiodocker's public API only; when aiodocker changes one of
these internals, this file is the only one to adapt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Final

import aiodocker
import aiohttp
from aiodocker.stream import Stream

CONNECT_FAILED: Final = 900
"""The ``DockerError.status`` aiodocker makes up for "could not connect" (no HTTP status)."""


def connect_failed(exc: aiodocker.DockerError) -> bool:
    """Whether aiodocker raised ``exc`` for a connection that could not be made at all."""
    return exc.status == CONNECT_FAILED


async def raw_get(
    docker: aiodocker.Docker,
    path: str,
    *,
    params: Mapping[str, str | bool],
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's, passed on as is)
) -> aiohttp.ClientResponse:
    """GET ``path`` and hand back the open response (the caller closes it).

    aiodocker's own log helpers decode with errors="ignore" and hide the response, so the log
    reader goes through its request method, ``Docker._do_query``.
    """
    return await docker._do_query(path, "GET", params=params, timeout=timeout)


def write_eof(stream: Stream) -> None:
    """Half-close an exec's hijacked connection: the process sees EOF, its output still flows.

    aiodocker's ``Stream.close`` closes both directions, so this reaches for the transport
    behind its private ``_resp``.
    """
    response = getattr(stream, "_resp", None)
    connection = getattr(response, "connection", None)
    transport = getattr(connection, "transport", None)
    if isinstance(transport, asyncio.WriteTransport) and transport.can_write_eof():
        transport.write_eof()


async def volume_sizes(docker: aiodocker.Docker) -> dict[str, int]:
    """Each volume's size in bytes from ``GET /system/df?type=volume`` (aiodocker has no
    wrapper for it); a size the engine has not measured (-1) is left out."""
    data = await docker._query_json("system/df", params={"type": "volume"})
    sizes: dict[str, int] = {}
    volumes = data.get("Volumes") if isinstance(data, dict) else None
    for volume in volumes if isinstance(volumes, list) else []:
        if not isinstance(volume, dict):
            continue
        usage = volume.get("UsageData")
        size = usage.get("Size") if isinstance(usage, dict) else None
        if isinstance(volume.get("Name"), str) and isinstance(size, int) and size >= 0:
            sizes[volume["Name"]] = size
    return sizes


async def put_archive(docker: aiodocker.Docker, cid: str, path: str, data: bytes) -> None:
    """``PUT /containers/{id}/archive``: unpack a tar into ``path`` (aiodocker's wrapper sends
    it as ``application/json``; this one says what it is)."""
    async with docker._query(
        f"containers/{cid}/archive",
        method="PUT",
        data=data,
        headers={"content-type": "application/x-tar"},
        params={"path": path},
    ):
        pass


async def volume_request(
    docker: aiodocker.Docker,
    path: str,
    method: str = "GET",
    *,
    body: Mapping[str, object] | None = None,
    params: Mapping[str, str] | None = None,
) -> object:
    """One call of the volumes API (aiodocker's ``DockerVolumes`` is untyped, and its
    ``delete`` drops the answer): the decoded JSON, or None for an empty answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if body is not None else None
    async with docker._query(
        path, method=method, data=data, headers=headers, params=params
    ) as response:
        text = await response.text()
    return json.loads(text) if text.strip() else None
