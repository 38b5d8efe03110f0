"""A private ``redis-server`` for the tests that need one of their own.

Tests whose fault is global to a server (FLUSHALL, ``maxmemory``, a kill and restart) run it
against a redis-server of their own, so the tests running beside them (``pytest -n``) keep
theirs. It is the same real redis-server binary the shared one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import redis.asyncio as aioredis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private redis-server on one loopback port, with an append-only file so a restart
    finds the leases again (a crash, not a flush)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, within: float = 10.0) -> None:
        """Start it and wait until it answers PING."""
        self._spawn()
        assert self.proc is not None
        client = aioredis.Redis.from_url(self.url, socket_timeout=1.0)
        try:
            deadline = asyncio.get_running_loop().time() + within
            while True:
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"redis-server on {self.port} did not answer PING")
                if self.proc.poll() is not None:
                    raise AssertionError(f"redis-server exited with {self.proc.returncode}")
                await asyncio.sleep(0.05)  # polling PING, not waiting for correctness
        finally:
            await client.aclose()

    def start_sync(self, within: float = 10.0) -> None:
        """:meth:`start` for a synchronous fixture."""
        asyncio.run(self.start(within))

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """Kill it the hard way (a crash); by its pid, and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
