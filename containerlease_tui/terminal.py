"""The local terminal's input, read without blocking the event loop (stdlib only: the direct
shell in :mod:`.engine.shell` and the daemon's client both use it)."""

from __future__ import annotations

import asyncio
import os
import stat


class InputReader:
    """Chunks of a local file descriptor, read without blocking the event loop.

    Pipes and terminals are watched with ``add_reader``, so nothing is left reading stdin once
    the shell ends (a leftover thread would steal the TUI's keystrokes); regular files, which
    the selector cannot watch, are read in a worker thread since they never block for long.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._watching = False
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            self._queue.put_nowait(b"")  # stdin is closed: no input at all
            return
        if not regular:
            try:
                self._loop.add_reader(fd, self._on_readable)
                self._watching = True
            except (OSError, NotImplementedError, ValueError):
                self._watching = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # e.g. EIO from a hung-up terminal: treat as end of input
        if not data:
            self.close()
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        if self._watching or not self._queue.empty():
            return await self._queue.get()
        return await asyncio.to_thread(os.read, self._fd, 65536)

    def close(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False
