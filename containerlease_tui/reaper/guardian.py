"""The guardian reaper: no lease is ever left without an enforcer.

When the app quits (or its terminal hangs up) or the CLI makes or extends a lease, and no
reaper's heartbeat is alive for this installation, :func:`ensure_reaper` starts
``containerlease _guardian``: a headless reaper in its own session (the hang-up does not reach
it), logging JSON lines to the user's state dir. One per installation (a Redis lock,
``P:guardian``). It leaves by itself once no active lease is left or another reaper is alive,
so it never competes with a real deployment's reaper for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from platformdirs import user_state_dir

from containerlease_tui.config import Settings
from containerlease_tui.reaper.logs import LOGGER_NAME, crash_text, json_handler, one_line
from containerlease_tui.reaper.loop import Reaper
from containerlease_tui.spawn import spawn_detached
from containerlease_tui.store import LeaseStore, ReaperBeat, StoreError
from containerlease_tui.store.events import ACTOR, REAPER_ACTOR
from containerlease_tui.store.protocol import Store

__all__ = ["GuardianStart", "ensure_reaper", "guardian_log_path", "run_guardian"]

# How often the guardian checks whether it is still needed, and how long its lock outlives it.
WATCH_PERIOD: Final = 1.0
LOCK_TTL: Final = timedelta(seconds=10)
MODE: Final = "guardian"
GIVE_UP_AFTER: Final = 600.0  # seconds without an answer from the store


def guardian_log_path() -> Path:
    """Where a guardian started for this user logs (JSON lines, appended)."""
    return Path(user_state_dir("containerlease")) / "guardian.log"


@dataclass(frozen=True)
class GuardianStart:
    """What :func:`ensure_reaper` did: ``started`` a guardian (pid, log), or found one needed
    but ``disabled`` by ``[reaper] guardian = false``."""

    started: bool
    pid: int | None = None
    log: Path | None = None
    disabled: bool = False

    def describe(self) -> str:
        """The one line a user is told."""
        if self.disabled:
            return (
                "warning: no reaper is running: leases will not be removed at their deadline "
                "until one runs (containerlease --reaper; [reaper] guardian is off)"
            )
        return f"no reaper was running: started a guardian reaper (pid {self.pid}, log {self.log})"


def _others(beats: list[ReaperBeat]) -> list[ReaperBeat]:
    """The live reapers other than this process: a beat of a process of this host that no
    longer exists is a leftover (its TTL has not run out yet), not a reaper."""
    host = socket.gethostname()
    return [b for b in beats if b.host != host or (b.pid != os.getpid() and _exists(b.pid))]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (EPERM): alive
    return True


async def ensure_reaper(settings: Settings, store: Store) -> GuardianStart | None:
    """Start a guardian if leases are active and no reaper is alive; None when none is needed.

    Raises :class:`StoreError` when Redis cannot be read (then nobody can tell; the caller says
    nothing rather than start guardians blindly).
    """
    if _others(await store.reapers()) or not await store.active_ids():
        return None
    if not settings.reaper.guardian:
        return GuardianStart(started=False, disabled=True)
    log = guardian_log_path()
    pid = spawn_detached(["_guardian"], log=log)
    return GuardianStart(started=True, pid=pid, log=log)


async def _still_needed(store: Store, log: logging.Logger) -> bool | None:
    """False once another reaper is alive or no active lease is left; None when the store
    cannot say (an outage is exactly when leases still need an enforcer: stay)."""
    try:
        others = _others(await store.reapers())
        if others:
            log.info(
                "another reaper is alive: leaving",
                extra={"action": "leave", "reason": "reaper", "other": others[0].key},
            )
            return False
        if not await store.active_ids():
            log.info("no active lease left: leaving", extra={"action": "leave", "reason": "idle"})
            return False
    except StoreError as exc:
        log.debug("cannot check the store", extra={"action": "watch", "error": one_line(exc)})
        return None
    return True


async def _watch(store: Store, token: str, stop: asyncio.Event, log: logging.Logger) -> None:
    """Hold the lock and check the reason to be, every :data:`WATCH_PERIOD`, until ``stop``.

    A store that stays unreachable for :data:`GIVE_UP_AFTER` ends the guardian: nothing it
    could do needs a store that is gone for good (a removed embedded store, a test's Redis),
    and a detached process must not outlive its reason forever.
    """
    last_ok = time.monotonic()
    down = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_PERIOD)
        if stop.is_set():
            return
        try:
            if not await store.keep_guardian(token, LOCK_TTL):
                log.warning("guardian lock lost: leaving", extra={"action": "leave"})
                stop.set()
                return
        except StoreError as exc:
            log.debug("cannot renew the lock", extra={"action": "watch", "error": one_line(exc)})
        needed = await _still_needed(store, log)
        if needed is False:
            stop.set()
        elif needed is None:
            if not down:  # once per outage, not every second
                log.warning("the store does not answer; staying", extra={"action": "watch"})
                down = True
            if time.monotonic() - last_ok > GIVE_UP_AFTER:
                log.warning(
                    "the store has not answered for 10 min: leaving",
                    extra={"action": "leave", "reason": "store"},
                )
                stop.set()
        else:
            last_ok, down = time.monotonic(), False


async def run_guardian(settings: Settings) -> int:
    """``containerlease _guardian``: the detached reaper; 0 when it leaves because it is no
    longer needed (or another guardian holds the lock), 1 on a crash."""
    log = logging.getLogger(f"{LOGGER_NAME}.guardian")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = json_handler()
    log.addHandler(handler)
    store = LeaseStore.from_settings(settings)
    from containerlease_tui.engine import Engine  # aiodocker: only once a reaper runs

    engine = Engine(settings.docker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    token: str | None = None
    try:
        token = await store.take_guardian(LOCK_TTL)
        if token is None:
            log.info("another guardian is running", extra={"action": "leave", "reason": "lock"})
            return 0
        log.info(
            "guardian reaper",
            extra={"action": "config", "prefix": settings.redis.key_prefix, "pid": os.getpid()},
        )
        if await _still_needed(store, log) is False:
            return 0
        reaper = Reaper(settings, store, engine, mode=MODE, log=log)
        watcher = asyncio.create_task(_watch(store, token, stop, log))
        ACTOR.set(REAPER_ACTOR)  # this process is a reaper: its events say so
        try:
            await reaper.run(stop)
        finally:
            stop.set()
            await watcher
        return 0
    except StoreError as exc:
        log.error("cannot reach the store", extra={"action": "crash", "error": one_line(exc)})
        return 1
    except Exception as exc:  # a bug: one JSON line, not a traceback
        log.error(
            "guardian crashed", exc_info=exc, extra={"action": "crash", "error": crash_text(exc)}
        )
        return 1
    finally:
        if token is not None:
            with contextlib.suppress(Exception):
                await store.drop_guardian(token)
        with contextlib.suppress(Exception):
            await engine.close()
        with contextlib.suppress(Exception):
            await store.close()
        log.removeHandler(handler)
