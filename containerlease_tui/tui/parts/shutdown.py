"""Shutdown: the in-app reaper stopped, the guardian hand-over, hang-up signals, closing."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from textual.worker import WorkerState

from containerlease_tui.tui.parts.base import AppBase
from containerlease_tui.tui.watchdog import exit_after

REAPER_STOP_TIMEOUT = 5.0
"""How long quitting waits for the in-app reaper to finish its pass."""
HAND_OVER_TIMEOUT = 3.0
"""How long quitting waits to learn whether a guardian reaper must be started."""
EXIT_SLACK = 2.0
"""What a signalled leave may take beyond stopping the reaper and handing over (restoring the
terminal, closing connections) before the watchdog ends the process."""


class ShutdownPart(AppBase):
    """Quitting: stop the in-app reaper, hand the leases to a guardian, SIGHUP and SIGTERM."""

    async def action_quit(self) -> None:
        """Stop the in-app reaper (letting it finish a removal), hand the leases over to a
        guardian reaper if no other reaper is alive, and quit."""
        await self._stop_reaper()
        await self._hand_over()
        self.exit()

    async def _hand_over(self) -> None:
        """No lease is left without an enforcer: the service starts the guardian if needed."""
        if self.service is None:
            return
        with contextlib.suppress(Exception):
            started = await asyncio.wait_for(self.service.ensure_reaper(), HAND_OVER_TIMEOUT)
            self.exit_note = started.describe() if started else None

    def _on_hang_up(self) -> None:
        """SIGHUP (the SSH session dropped) or SIGTERM: leave as `q` does, guardian included,
        instead of dying on the spot with the leases unattended."""
        if not self._leaving:
            self._leaving = True
            # The terminal may be gone: Textual's shutdown then hangs writing to it, so the
            # process is made to end (a backstop here, in case handing over itself hangs).
            exit_after(REAPER_STOP_TIMEOUT + HAND_OVER_TIMEOUT + 2 * EXIT_SLACK)
            self.run_worker(self._leave_on_signal(), group="quit", exit_on_error=False)

    async def _leave_on_signal(self) -> None:
        await self._stop_reaper()
        await self._hand_over()
        exit_after(EXIT_SLACK)  # the leases are handed over: nothing left needs this process
        self.exit()

    def _catch_hang_up(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_hang_up)
                self._signals.append(sig)

    async def _stop_reaper(self) -> None:
        self._quitting = True
        self._reaper_stop.set()
        worker = self._reaper_worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), REAPER_STOP_TIMEOUT)

    async def on_unmount(self) -> None:
        self._reaper_stop.set()
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if self.service is not None and self._given_service is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service.close(), 5.0)
