"""``containerlease serve``: the foreground lease daemon.

It alone holds the Docker engine and Redis; it serves the routes of :mod:`.routes` on the unix
socket ``[service] socket`` and runs the reaper in the same loop (unless ``--no-reaper``). JSON
log lines on stderr. SIGTERM or SIGINT: stop accepting, let requests in flight finish (up to
``DRAIN``), stop the reaper, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any, Final

from aiohttp import web

from containerlease_tui import __version__
from containerlease_tui.config import Settings, redact_url
from containerlease_tui.daemon.routes import Backend, application
from containerlease_tui.daemon.sockets import UnsafeSocket, bind
from containerlease_tui.engine import Engine
from containerlease_tui.reaper.logs import LOGGER_NAME, crash_text, json_handler
from containerlease_tui.reaper.loop import Reaper
from containerlease_tui.store import LeaseStore

DRAIN: Final = 10.0
"""Seconds requests in flight get to finish after SIGTERM."""


def daemon_log() -> logging.Logger:
    log = logging.getLogger(f"{LOGGER_NAME}.daemon")
    log.propagate = False
    log.setLevel(logging.DEBUG if os.environ.get("CONTAINERLEASE_DEBUG") else logging.INFO)
    return log


async def serve(
    settings: Settings, *, reaper: bool = True
) -> int:  # long: one start-serve-drain sequence
    """Run the daemon until SIGTERM/SIGINT; the exit code (2: the socket is unsafe)."""
    # Before the socket exists: a SIGTERM as soon as it answers is a clean stop too.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    log = daemon_log()
    handler = json_handler()
    log.addHandler(handler)
    # aiohttp's own loggers would write tracebacks for malformed requests: the daemon logs
    # one line per problem itself.
    for name in ("aiohttp.server", "aiohttp.access", "aiohttp.web"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    path = settings.service.socket
    try:
        sock = bind(path, settings.service.socket_mode, settings.service.socket_group)
    except UnsafeSocket as exc:
        log.error("refusing to start", extra={"action": "socket", "error": str(exc)})
        log.removeHandler(handler)
        return 2
    store = LeaseStore.from_settings(settings)
    engine = Engine(settings.docker)
    backend = Backend(settings, store, engine, log)
    runner = web.AppRunner(application(backend), access_log=None, handle_signals=False)
    reaper_task: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        log.info(
            "daemon listening",
            extra={
                "action": "start",
                "socket": str(path),
                "mode": f"{settings.service.socket_mode:o}",
                "group": settings.service.socket_group,
                "redis": redact_url(settings.redis.url),
                "docker": redact_url(settings.docker.url),
                "reaper": reaper,
                "pid": os.getpid(),
                "version": __version__,
            },
        )
        if reaper:
            reaper_task = asyncio.create_task(
                Reaper(settings, store, engine, mode="daemon", log=log).run(stop)
            )
        waiter = asyncio.create_task(stop.wait())
        watched: list[asyncio.Task[Any]] = [waiter]
        if reaper_task is not None:
            watched.append(reaper_task)
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if reaper_task is not None and reaper_task.done() and not stop.is_set():
            crash = None if reaper_task.cancelled() else reaper_task.exception()
            log.error(
                "reaper stopped; the daemon stops with it",
                extra={"action": "crash", "error": crash_text(crash) if crash else "ended"},
            )
            stop.set()
            return 1
        log.info("stop requested; finishing requests in flight", extra={"action": "signal"})
        await site.stop()  # no new connections
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN):
                await backend.idle.wait()
        return 0
    finally:
        stop.set()
        if reaper_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await reaper_task
        await runner.cleanup()
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(Exception):
            await engine.close()
        with contextlib.suppress(Exception):
            await store.close()
        log.info("daemon stopped", extra={"action": "stop"})
        log.removeHandler(handler)
