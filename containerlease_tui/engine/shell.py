"""The interactive shell: an exec attached to this process's terminal (raw mode, a remote TTY
sized like the local one) or, with piped stdin, a plain pipe with stdout and stderr apart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Sequence
from typing import BinaryIO, TextIO, cast

import aiodocker
import aiohttp
from aiodocker.execs import Exec
from aiodocker.stream import Stream

from containerlease_tui.engine import _compat
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.execs import exit_code, open_exec
from containerlease_tui.engine.parse import short_id
from containerlease_tui.terminal import InputReader

__all__ = ["InputReader", "ShellSession", "open_shell", "run_shell"]


def _fileno(stream: object, default: int) -> int:
    try:
        return cast(TextIO, stream).fileno()
    except (AttributeError, ValueError, OSError):
        return default  # replaced by something fd-less (a capture): use the process's own


def _binary(stream: object, fallback: TextIO | None) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    if buffer is None and fallback is not None:
        buffer = getattr(fallback, "buffer", None)
    if buffer is None:
        raise EngineError("cannot open a shell: there is no terminal to write to")
    return cast(BinaryIO, buffer)


def _terminal_size(*fds: int) -> os.terminal_size | None:
    for fd in fds:
        with contextlib.suppress(OSError):
            return os.get_terminal_size(fd)
    return None


async def run_shell(conn: Connection, cid: str, cmd: Sequence[str] = ("/bin/sh",)) -> int:
    """Run ``cmd`` in the container on this terminal; returns its exit code.

    On a terminal: a TTY exec, the local terminal in raw mode (restored afterwards) and the
    remote TTY sized like it. With piped stdin: no TTY, stdin is passed through and its end
    is passed on, stdout and stderr stay apart.
    """
    stdin_fd = _fileno(sys.stdin, 0)
    out = _binary(sys.stdout, sys.__stdout__)
    err = _binary(sys.stderr, sys.__stderr__)
    interactive = os.isatty(stdin_fd)
    env = [f"TERM={os.environ.get('TERM') or 'xterm'}"] if interactive else None
    action = f"open a shell in container {short_id(cid)}"
    async with contextlib.AsyncExitStack() as stack:
        execution, stream = await open_exec(
            conn, stack, cid, cmd, action, stdin=True, tty=interactive, environment=env
        )
        reader = InputReader(stdin_fd)
        stack.callback(reader.close)
        if interactive:
            saved = termios.tcgetattr(stdin_fd)
            stack.callback(termios.tcsetattr, stdin_fd, termios.TCSADRAIN, saved)
            tty.setraw(stdin_fd)
            await _sync_size(conn, execution, stdin_fd)
            _watch_resize(conn, stack, execution, stdin_fd)
        feeder = asyncio.create_task(_feed_stdin(reader, stream))
        try:
            await _drain_output(conn, stream, out, err, action)
        finally:
            feeder.cancel()
            await asyncio.wait([feeder])
            if not feeder.cancelled() and feeder.exception() is not None:
                raise conn.translate(cast(BaseException, feeder.exception()), action, None)
    return await exit_code(conn, execution, action)


async def _feed_stdin(reader: InputReader, stream: Stream) -> None:
    try:
        while data := await reader.read():
            await stream.write_in(data)
        _compat.write_eof(stream)  # the process sees EOF; its output still flows
    except (ConnectionError, RuntimeError, aiohttp.ClientConnectionError):
        return  # the shell ended and the connection with it


async def _drain_output(
    conn: Connection, stream: Stream, out: BinaryIO, err: BinaryIO, action: str
) -> None:
    try:
        while (message := await stream.read_out()) is not None:
            target = err if message.stream == 2 else out
            target.write(message.data)
            target.flush()
    except (ConnectionError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return  # the connection ended with the process; its exit code tells the rest
    except (aiodocker.DockerError, OSError) as exc:
        raise conn.translate(exc, action, None) from exc


async def _sync_size(conn: Connection, execution: Exec, fd: int) -> None:
    size = _terminal_size(fd, _fileno(sys.stdout, 1))
    if size is None:
        return
    # A resize racing the process start, or a daemon refusing it, must not end the shell.
    with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError):
        async with asyncio.timeout(conn.timeout):
            await execution.resize(h=size.lines, w=size.columns)


def _watch_resize(
    conn: Connection, stack: contextlib.AsyncExitStack, execution: Exec, fd: int
) -> None:
    """Follow local SIGWINCH, unless someone else (e.g. a TUI) owns that signal."""
    if signal.getsignal(signal.SIGWINCH) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        return
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_resize() -> None:
        task = loop.create_task(_sync_size(conn, execution, fd))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGWINCH, on_resize)
    except (NotImplementedError, RuntimeError, ValueError):
        return  # not the main thread: the initial size has to do
    stack.callback(loop.remove_signal_handler, signal.SIGWINCH)


class ShellSession:
    """An exec with stdin and (optionally) a TTY, driven by someone else than this terminal:
    the daemon's WebSocket shell (:mod:`containerlease_tui.daemon.shell`) feeds and reads it."""

    def __init__(self, conn: Connection, execution: Exec, stream: Stream, action: str) -> None:
        self._conn = conn
        self._execution = execution
        self._stream = stream
        self.action = action

    async def write(self, data: bytes) -> None:
        await self._stream.write_in(data)

    def eof(self) -> None:
        _compat.write_eof(self._stream)

    async def read(self) -> tuple[int, bytes] | None:
        """The next output chunk as (1 stdout | 2 stderr, bytes); None once the process ends."""
        try:
            message = await self._stream.read_out()
        except (ConnectionError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            return None
        except (aiodocker.DockerError, OSError) as exc:
            raise self._conn.translate(exc, self.action, None) from exc
        if message is None:
            return None
        return (2 if message.stream == 2 else 1), bytes(message.data)

    async def resize(self, rows: int, cols: int) -> None:
        with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError):
            async with asyncio.timeout(self._conn.timeout):
                await self._execution.resize(h=rows, w=cols)

    async def exit_code(self) -> int:
        return await exit_code(self._conn, self._execution, self.action)


async def open_shell(
    conn: Connection,
    stack: contextlib.AsyncExitStack,
    cid: str,
    cmd: Sequence[str],
    *,
    tty: bool,
    term: str = "xterm",
) -> ShellSession:
    """Open ``cmd`` in the container for a remote terminal (closed when ``stack`` closes)."""
    action = f"open a shell in container {short_id(cid)}"
    env = [f"TERM={term}"] if tty else None
    execution, stream = await open_exec(
        conn, stack, cid, cmd, action, stdin=True, tty=tty, environment=env
    )
    return ShellSession(conn, execution, stream, action)
