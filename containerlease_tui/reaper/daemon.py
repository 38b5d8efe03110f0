"""The headless reaper, ``containerlease --reaper``: JSON log lines on stderr, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable

from containerlease_tui import __version__
from containerlease_tui.config import Settings, redact_url
from containerlease_tui.durations import format_duration
from containerlease_tui.reaper.context import PassResult
from containerlease_tui.reaper.logs import LOGGER_NAME, crash_text, json_handler, one_line
from containerlease_tui.reaper.loop import Reaper
from containerlease_tui.store import LeaseStore, StoreError
from containerlease_tui.store.events import ACTOR, REAPER_ACTOR


class _Signals:
    """SIGTERM/SIGINT: the first asks the reaper to stop, a second abandons in-flight work."""

    def __init__(self, log: logging.Logger, stop: asyncio.Event) -> None:
        self._log = log
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        self._installed: list[signal.Signals] = []
        self.work: asyncio.Task[object] | None = None
        self.aborted = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not on every platform or thread: then the default handlers stay.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)

    def remove(self) -> None:
        for sig in self._installed:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stop.is_set():
            self._log.info(
                "stop requested; finishing in-flight removals",
                extra={"action": "signal", "signal": sig.name},
            )
            self._stop.set()
        elif not self.aborted and self.work is not None:
            self.aborted = True
            self._log.warning(
                "second signal: abandoning in-flight work", extra={"signal": sig.name}
            )
            self.work.cancel()


def _headless_log() -> logging.Logger:
    log = logging.getLogger(f"{LOGGER_NAME}.headless")
    log.propagate = False
    log.setLevel(logging.DEBUG if os.environ.get("CONTAINERLEASE_DEBUG") else logging.INFO)
    return log


def _log_config(log: logging.Logger, settings: Settings, *, once: bool, dry_run: bool) -> None:
    log.info(
        "headless reaper",
        extra={
            "action": "config",
            "redis": redact_url(settings.redis.url),
            "docker": redact_url(settings.docker.url),
            "prefix": settings.redis.key_prefix,
            "once": once,
            "dry_run": dry_run,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "interval": format_duration(settings.reaper.interval),
        },
    )


async def _work(
    reaper: Reaper, signals: _Signals, stop: asyncio.Event, log: logging.Logger, *, once: bool
) -> int:
    """Run the reaper (or one pass) to its end; the exit code."""
    main = asyncio.current_task()
    ACTOR.set(REAPER_ACTOR)  # this process is a reaper: its events say so
    coro: Awaitable[object] = reaper.run_once(stop) if once else reaper.run(stop)
    signals.work = asyncio.ensure_future(coro)
    try:
        outcome = await signals.work
    except asyncio.CancelledError:
        if not signals.aborted or (main is not None and main.cancelling()):
            raise
        return 1
    except StoreError as exc:
        log.error("pass failed", extra={"action": "pass", "error": one_line(exc)})
        return 1
    except Exception as exc:  # a bug: one JSON line, not a traceback
        log.error(
            "reaper crashed", exc_info=exc, extra={"action": "crash", "error": crash_text(exc)}
        )
        return 1
    if isinstance(outcome, PassResult) and outcome.failed and not stop.is_set():
        return 1
    return 0


async def run_headless(settings: Settings, *, once: bool, dry_run: bool) -> int:
    """``containerlease --reaper``: JSON lines on stderr; 0 on a clean stop.

    SIGTERM or SIGINT asks the reaper to stop: in-flight removals finish, claims are released,
    the heartbeat is dropped and 0 is returned. A second signal abandons in-flight work (claims
    are still released) and returns 1. With ``once``, one pass is made; the result is 1 when
    Redis could not be read or a lease could not be reaped (it is retried by the next pass).
    """
    log = _headless_log()
    handler = json_handler()
    log.addHandler(handler)
    store = LeaseStore.from_settings(settings)
    from containerlease_tui.engine import Engine  # aiodocker: only once a reaper runs

    engine = Engine(settings.docker)
    reaper = Reaper(settings, store, engine, mode="headless", dry_run=dry_run, log=log)
    stop = asyncio.Event()
    signals = _Signals(log, stop)
    signals.install()
    _log_config(log, settings, once=once, dry_run=dry_run)
    try:
        return await _work(reaper, signals, stop, log, once=once)
    finally:
        signals.remove()
        with contextlib.suppress(Exception):
            await engine.close()
        with contextlib.suppress(Exception):
            await store.close()
        log.removeHandler(handler)
