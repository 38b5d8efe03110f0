"""The one module that touches aiodocker's private API (its pinned range: see pyproject.toml).

Everything else in the engine uses aiodocker's public API only; when aiodocker changes one of
these internals, this file is the only one to adapt.
"""

from __future__ import annotations

import asyncio
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
