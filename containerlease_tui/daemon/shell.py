"""The interactive shell over the daemon: ``GET /v1/leases/{ref}/shell`` upgraded to a WebSocket.

The daemon checks the lease as direct mode does (the peer may open a shell in it, its container
runs and carries this lease's labels), then relays bytes between the WebSocket and a TTY exec:

- client → daemon: binary frames are the terminal's input; text frames are JSON controls,
  ``{"resize": [rows, cols]}`` and ``{"eof": true}``;
- daemon → client: binary frames are output, the first byte naming the stream (1 stdout,
  2 stderr); the last frame is text, ``{"exit": CODE}`` or a typed error
  (``{"error": true, ...}``), then the daemon closes.

A client that goes away mid-shell ends the exec's stream; the daemon keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Final

from aiohttp import WSMsgType, web

from containerlease_tui.daemon import wire
from containerlease_tui.engine import Engine
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.ownership import own_container
from containerlease_tui.engine.shell import ShellSession
from containerlease_tui.errors import InvalidInput, LeaseError
from containerlease_tui.service.base import translated

MAX_CMD: Final = 64
MAX_TERM: Final = 64


def _query_cmd(raw: str | None) -> list[str]:
    if not raw:
        return ["/bin/sh"]
    try:
        cmd = json.loads(raw)
    except ValueError:
        raise InvalidInput("cmd must be a JSON list of strings") from None
    if (
        not isinstance(cmd, list)
        or not cmd
        or len(cmd) > MAX_CMD
        or not all(isinstance(part, str) and len(part) <= 4096 for part in cmd)
    ):
        raise InvalidInput("cmd must be a JSON list of strings") from None
    return cmd


def _size(value: object) -> tuple[int, int] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and 0 < v < 10_000 for v in value)
    ):
        return value[0], value[1]
    return None


async def shell_route(request: web.Request) -> web.StreamResponse:
    from containerlease_tui.daemon.routes import BACKEND, service

    svc = service(request)
    ref = request.match_info["ref"]
    lease = await svc.container_for(ref, "open a shell in")
    await svc.check_shell(lease)  # refused before the upgrade: a clean typed 4xx
    cmd = _query_cmd(request.query.get("cmd"))
    tty = request.query.get("tty", "1") in ("1", "true")
    term = request.query.get("term", "xterm")[:MAX_TERM]
    if not term.replace("-", "").replace(".", "").isalnum():
        term = "xterm"
    size = _size([int(v) for v in request.query.getall("size", []) if v.isdigit()][:2])
    engine = request.app[BACKEND].engine
    if not isinstance(engine, Engine):
        raise InvalidInput("this daemon's engine cannot open interactive shells")
    assert lease.docker_id is not None
    with translated():
        cid = (
            await own_container(engine, lease.docker_id, lease.id, svc.settings.redis.key_prefix)
            or lease.docker_id
        )
    ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=30)
    await ws.prepare(request)
    request.app[BACKEND].log.info(
        "shell opened", extra={"action": "shell", "lease": lease.id, "user": svc.user}
    )
    code: int | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            with translated():
                session = await engine.open_shell(stack, cid, cmd, tty=tty, term=term)
            if size is not None and tty:
                await session.resize(*size)
            feeder = asyncio.create_task(_feed(ws, session))
            relay = asyncio.create_task(_relay(ws, session))
            try:
                # The client leaving (the feeder ends) ends the shell: the stack closes the
                # exec's stream, and the process gets a hang-up.
                await asyncio.wait([feeder, relay], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (feeder, relay):
                    task.cancel()
                await asyncio.wait([feeder, relay])
            if not relay.cancelled() and (exc := relay.exception()) is not None:
                raise exc
            if relay.cancelled():
                return ws  # the client went away
            with translated():
                code = await session.exit_code()
        await ws.send_str(json.dumps({"exit": code}))
    except LeaseError as exc:
        _, body = wire.lease_error_body(exc)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(body))
    except EngineError as exc:  # pragma: no cover - translated turns these into LeaseErrors
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(wire.error_body("EngineError", str(exc)[:300])))
    except (ConnectionError, RuntimeError):
        pass  # the client went away mid-shell
    finally:
        await ws.close()
        request.app[BACKEND].log.info(
            "shell closed",
            extra={"action": "shell", "lease": lease.id, "user": svc.user, "exit": code},
        )
    return ws


async def _relay(ws: web.WebSocketResponse, session: ShellSession) -> None:
    while (chunk := await session.read()) is not None:
        stream, data = chunk
        await ws.send_bytes(bytes([stream]) + data)


async def _feed(ws: web.WebSocketResponse, session: ShellSession) -> None:
    """The client's input and controls into the exec, until the client is done or gone."""
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await session.write(message.data)
            elif message.type == WSMsgType.TEXT:
                try:
                    control = json.loads(message.data)
                except ValueError:
                    continue
                if not isinstance(control, dict):
                    continue
                if (size := _size(control.get("resize"))) is not None:
                    await session.resize(*size)
                if control.get("eof") is True:
                    session.eof()
            else:
                break
    except (ConnectionError, RuntimeError):
        return
