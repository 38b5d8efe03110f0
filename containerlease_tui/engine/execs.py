"""Commands run in a container (Docker "exec"): opening one, its exit code, and the
non-interactive :func:`run_exec`. The interactive shell builds on this: :mod:`.shell`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import cast

import aiodocker
import aiohttp
from aiodocker.execs import Exec
from aiodocker.stream import Stream

from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.parse import as_dict, as_int, short_id
from containerlease_tui.engine.types import EXEC_OUTPUT_LIMIT, ExecResult


async def open_exec(
    conn: Connection,
    stack: contextlib.AsyncExitStack,
    cid: str,
    cmd: Sequence[str],
    action: str,
    *,
    stdin: bool,
    tty: bool,
    environment: list[str] | None = None,
) -> tuple[Exec, Stream]:
    """Create the exec and open its stream (closed when ``stack`` closes)."""
    async with conn.guard(action):
        try:
            execution = await (
                conn.client()
                .containers.container(cid)
                .exec(
                    list(cmd),
                    stdin=stdin,
                    stdout=True,
                    stderr=True,
                    tty=tty,
                    environment=environment,
                )
            )
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                raise EngineError(f"container {short_id(cid)} does not exist") from exc
            if exc.status == 409:
                why = "is paused" if "paused" in exc.message else "is not running"
                raise EngineError(f"container {short_id(cid)} {why}") from exc
            raise
        # Entering the Stream opens the hijacked connection (typed loosely upstream).
        stream = await stack.enter_async_context(
            cast(contextlib.AbstractAsyncContextManager[Stream], execution.start())
        )
    return execution, stream


async def exit_code(conn: Connection, execution: Exec, action: str) -> int:
    """The exec's exit code; the daemon may need a moment to record it after the stream ends."""
    deadline = time.monotonic() + conn.timeout
    pause = 0.02
    while True:
        async with conn.guard(action):
            data = as_dict(await execution.inspect())
        code = as_int(data.get("ExitCode"))
        if not data.get("Running") and code is not None:
            return code
        if time.monotonic() >= deadline:
            raise EngineError(f"could not {action}: the shell did not report an exit code")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def run_exec(conn: Connection, cid: str, cmd: Sequence[str]) -> ExecResult:
    """Run ``cmd`` in the container without a TTY or stdin; its output and exit code.

    stdout and stderr are kept apart, each up to :data:`EXEC_OUTPUT_LIMIT` bytes (the rest
    is read and dropped, and ``truncated`` set), so a chatty command cannot exhaust memory.
    """
    action = f"run a command in container {short_id(cid)}"
    buffers = {1: bytearray(), 2: bytearray()}
    truncated = False
    async with contextlib.AsyncExitStack() as stack:
        execution, stream = await open_exec(conn, stack, cid, cmd, action, stdin=False, tty=False)
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
            raise conn.translate(exc, action, None) from exc
    code = await exit_code(conn, execution, action)
    return ExecResult(code, bytes(buffers[1]), bytes(buffers[2]), truncated)
