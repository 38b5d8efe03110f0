"""Connection setup (unix socket, tcp, TLS) and the one translation of transport failures.

A :class:`Connection` owns the aiodocker client (created on first use), bounds every call by
the configured timeout (:meth:`Connection.guard`) and turns whatever aiodocker or aiohttp raise
into the :class:`EngineError` a user sees (:meth:`Connection.translate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import aiodocker
import aiohttp

from containerlease_tui.config import DockerSettings, redact_url
from containerlease_tui.engine import _compat
from containerlease_tui.engine.errors import EngineError, EngineUnavailable
from containerlease_tui.engine.parse import Json, one_line, short_id


def reason(exc: BaseException) -> str:
    """The short cause of a connection failure ("No such file or directory")."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        return os_error.strerror or one_line(str(os_error)) or type(os_error).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the stream was cut short"
    return one_line(str(exc)) or type(exc).__name__


def ssl_context(settings: DockerSettings) -> ssl.SSLContext:
    """The client certificate context from ``cert_path`` (or ``DOCKER_CERT_PATH``, ~/.docker)."""
    folder = settings.cert_path or Path(
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
        raise EngineError(f"cannot load the TLS files in {folder}: {reason(exc)}") from exc
    return context


def connect(settings: DockerSettings) -> aiodocker.Docker:
    """A new aiodocker client for ``settings.url`` (unix://, tcp://, http:// or https://)."""
    url = settings.url
    shown = redact_url(url)
    t = settings.timeout
    timeout = aiohttp.ClientTimeout(total=t, connect=t, sock_connect=t, sock_read=t)
    scheme = url.partition("://")[0].lower()
    if scheme not in ("unix", "tcp", "http", "https"):
        raise EngineError(f"unsupported Docker URL {shown}: use unix:///path or tcp://host")
    context: ssl.SSLContext | None = None
    if scheme in ("tcp", "http", "https") and (settings.tls_verify or scheme == "https"):
        context = ssl_context(settings) if settings.tls_verify else None
        # aiohttp decides on TLS from the scheme, and aiodocker keeps tcp:// as given.
        url = "https://" + url.partition("://")[2]
    try:
        return aiodocker.Docker(url=url, timeout=timeout, ssl_context=context)
    except (ValueError, OSError, aiodocker.DockerError) as exc:
        raise EngineError(f"cannot use the Docker engine at {shown}: {reason(exc)}") from exc


class Connection:
    """One aiodocker client, created on first use; closed (and reopened on demand) by
    :meth:`close`."""

    def __init__(self, settings: DockerSettings) -> None:
        self.settings = settings
        self.url = redact_url(settings.url)  # safe to show
        self._docker: aiodocker.Docker | None = None

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    def client(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = connect(self.settings)
        return self._docker

    async def close(self) -> None:
        docker, self._docker = self._docker, None
        if docker is not None:
            with contextlib.suppress(Exception):
                await docker.close()

    def unreachable(self, cause: BaseException) -> EngineUnavailable:
        why = reason(cause)
        hint = " (is your user allowed to use Docker?)" if "permission" in why.lower() else ""
        return EngineUnavailable(f"the Docker engine is unreachable at {self.url}: {why}{hint}")

    def translate(self, exc: BaseException, action: str, limit: float | None) -> EngineError:
        """Any transport or API failure → the EngineError a user sees."""
        if isinstance(exc, aiodocker.DockerError):
            if _compat.connect_failed(exc):
                return self.unreachable(exc.__context__ or exc)
            if exc.status == 404 and "no such container" in exc.message.lower():
                return EngineError(f"could not {action}: the container does not exist")
            return EngineError(f"could not {action}: {one_line(exc.message)}")
        if isinstance(exc, TimeoutError):
            within = f" within {limit:g}s" if limit else ""
            return EngineUnavailable(
                f"the Docker engine at {self.url} did not answer{within} (while trying to {action})"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self.unreachable(exc)
        if isinstance(
            exc,
            aiohttp.ClientConnectionError
            | aiohttp.ClientPayloadError
            | asyncio.IncompleteReadError
            | OSError,
        ):
            return EngineUnavailable(
                f"lost the connection to the Docker engine at {self.url} "
                f"(while trying to {action}): {reason(exc)}"
            )
        if isinstance(exc, json.JSONDecodeError):
            return EngineError(f"could not {action}: the Docker engine sent an unreadable answer")
        return EngineError(f"could not {action}: {one_line(str(exc)) or type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def guard(self, action: str, *, extra: float = 0.0) -> AsyncIterator[None]:
        """Bound a call by the configured timeout (+ ``extra``) and translate its failures."""
        limit = self.settings.timeout + extra
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
            raise self.translate(exc, action, limit) from exc

    async def inspect_raw(self, cid: str) -> Json | None:
        """The container's inspect JSON, or None when it does not exist."""
        async with self.guard(f"inspect container {short_id(cid)}"):
            try:
                return cast(Json, await self.client().containers.container(cid).show())
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return None
                raise
