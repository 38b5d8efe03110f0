"""The log stream protocol: Docker's multiplexed frames (or a TTY's raw bytes) as text lines,
and following a log across dropped connections without repeating or losing a line."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncGenerator
from typing import Final

import aiodocker
import aiohttp

from containerlease_tui.engine import _compat
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.parse import as_dict, short_id
from containerlease_tui.labels import rfc3339_parts

# A line longer than this (no newline in sight) is handed out in pieces, not buffered forever.
MAX_LINE: Final = 1 << 20
# stream type (1 stdout, 2 stderr), three bytes of padding, payload length (big-endian).
_FRAME_HEADER = struct.Struct(">BxxxL")

LogKey = tuple[int, int]
"""A log timestamp as (epoch seconds, nanoseconds): exact, so reconnects can compare."""


class LineSplitter:
    """Turns stream chunks into text lines, one buffer per stream, so split lines rejoin."""

    def __init__(self) -> None:
        self._buffers: dict[int, bytearray] = {}

    def feed(self, stream: int, data: bytes) -> list[str]:
        buffer = self._buffers.setdefault(stream, bytearray())
        buffer.extend(data)
        lines: list[str] = []
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) >= MAX_LINE:
                    lines.append(_decode(bytes(buffer)))
                    buffer.clear()
                return lines
            lines.append(_decode(bytes(buffer[:end])))
            del buffer[: end + 1]

    def flush(self) -> list[str]:
        lines = [_decode(bytes(b)) for b in self._buffers.values() if b]
        self._buffers.clear()
        return lines


def _decode(line: bytes) -> str:
    return line.removesuffix(b"\r").decode("utf-8", errors="replace")


class LogCursor:
    """Where a followed log got to, so a reconnect with ``since`` neither repeats nor drops lines.

    Docker's ``since`` is inclusive, so a reconnect re-sends the messages stamped with the last
    timestamp seen; exactly as many of those as were already delivered are skipped.
    """

    def __init__(self) -> None:
        self.last: LogKey | None = None
        self._seen_at_last = 0
        self._skip = 0

    def accept(self, key: LogKey | None) -> bool:
        if key is None:
            return True
        if key == self.last:
            if self._skip:
                self._skip -= 1
                return False
            self._seen_at_last += 1
            return True
        self._skip = 0
        if self.last is None or key > self.last:
            self.last, self._seen_at_last = key, 1
        return True

    def rewind(self) -> str | None:
        """The ``since`` value for a reconnect (None: nothing seen yet)."""
        if self.last is None:
            return None
        self._skip = self._seen_at_last
        seconds, nanos = self.last
        return f"{seconds}.{nanos:09d}"


def log_key(text: str) -> LogKey | None:
    """A log timestamp as (epoch seconds, nanoseconds), or None if it is not one."""
    parts = rfc3339_parts(text)
    if parts is None:
        return None
    whole, nanos = parts
    return int(whole.timestamp()), nanos


def split_timestamp(payload: bytes) -> tuple[LogKey | None, bytes]:
    """A message's leading timestamp (from ``timestamps=1``) and the rest of it."""
    head, sep, rest = payload.partition(b" ")
    if sep and len(head) <= 40:
        key = log_key(head.decode("ascii", errors="replace"))
        if key is not None:
            return key, rest
    return None, payload


async def read_logs(
    conn: Connection, cid: str, *, follow: bool, tail: int | str = "all"
) -> AsyncGenerator[str, None]:
    """The container's stdout and stderr as text lines (no trailing newline).

    With ``follow`` the stream outlives dropped connections: while the container runs it is
    reopened from the last timestamp seen; it ends once the container stops or is gone.
    """
    info = await conn.inspect_raw(cid)
    if info is None:
        raise EngineError(f"container {short_id(cid)} does not exist")
    params: dict[str, str | bool] = {
        "stdout": True,
        "stderr": True,
        "timestamps": True,  # the reconnect cursor; stripped before lines are handed out
        "follow": follow,
        "tail": str(tail),
    }
    first_params = dict(params)
    opened_at = time.time()
    splitter = LineSplitter()
    cursor = LogCursor()
    pause = 0.0
    while True:
        running = bool(as_dict(info.get("State")).get("Running"))
        is_tty = bool(as_dict(info.get("Config")).get("Tty"))
        delivered = False
        frames = _frames(conn, cid, params, tty=is_tty, follow=follow)
        async with contextlib.aclosing(frames):
            async for stream, payload in frames:
                key, text = split_timestamp(payload)
                if not cursor.accept(key):
                    continue
                delivered = True
                for line in splitter.feed(stream, text):
                    yield line
        # A follow stream ends when the container stops or the connection drops; only the
        # latter, seen as "it was running when we connected", calls for another round.
        if not follow or not running:
            break
        pause = 0.0 if delivered else min(max(pause * 2, 0.1), 2.0)
        if pause:
            await asyncio.sleep(pause)  # the daemon keeps closing at once: do not spin
        latest = await conn.inspect_raw(cid)
        if latest is None:
            break
        info = latest
        since = cursor.rewind()
        params = dict(first_params)
        if since is not None:
            params["since"] = since
            params["tail"] = "all"
        elif str(tail) == "0":
            params["since"] = f"{opened_at:.9f}"
            params["tail"] = "all"
    for line in splitter.flush():
        yield line


async def _frames(
    conn: Connection, cid: str, params: dict[str, str | bool], *, tty: bool, follow: bool
) -> AsyncGenerator[tuple[int, bytes], None]:
    """(stream, payload) per log message of one connection (a dropped one ends a follow).

    Reads the raw response (see :func:`_compat.raw_get`) and always closes it.
    """
    t = conn.timeout
    # A followed stream may be silent for hours; a plain read must keep flowing.
    read = None if follow else t
    timeout = aiohttp.ClientTimeout(connect=t, sock_connect=t, sock_read=read)
    action = f"read the logs of container {short_id(cid)}"
    async with conn.guard(action):
        try:
            response = await _compat.raw_get(
                conn.client(), f"containers/{cid}/logs", params=params, timeout=timeout
            )
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                raise EngineError(f"container {short_id(cid)} does not exist") from exc
            raise
    try:
        reader = _raw_messages if tty else _multiplexed_messages
        async with contextlib.aclosing(reader(response.content)) as messages:
            async for message in messages:
                yield message
    except TimeoutError as exc:
        raise conn.translate(exc, action, t) from exc
    except (
        asyncio.IncompleteReadError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientConnectionError,
    ) as exc:
        if follow:
            return  # a dropped connection: the caller resumes where it got to
        raise conn.translate(exc, action, None) from exc
    finally:
        response.close()


async def _raw_messages(content: aiohttp.StreamReader) -> AsyncGenerator[tuple[int, bytes], None]:
    """A TTY container's log is raw bytes; with timestamps, one message per line."""
    pending = bytearray()
    while True:
        chunk = await content.readany()
        if not chunk:
            return
        pending.extend(chunk)
        while (end := pending.find(b"\n")) >= 0:
            message = bytes(pending[: end + 1])
            del pending[: end + 1]
            yield 1, message


async def _multiplexed_messages(
    content: aiohttp.StreamReader,
) -> AsyncGenerator[tuple[int, bytes], None]:
    """Docker's multiplexed stream: an 8-byte header (stream, length), then the payload."""
    while True:
        try:
            header = await content.readexactly(_FRAME_HEADER.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return  # the stream ended between two messages
        stream, length = _FRAME_HEADER.unpack(header)
        yield stream, await content.readexactly(length)
