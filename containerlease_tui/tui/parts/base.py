"""The shared base of the app's parts: its state, declared once, and the helpers all parts use."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

from textual.app import App
from textual.notifications import SeverityLevel
from textual.worker import Worker

from containerlease_tui.config import Settings
from containerlease_tui.models import Lease
from containerlease_tui.sanitize import clean, one_line
from containerlease_tui.tui.keys import Keymap
from containerlease_tui.tui.screens import MainScreen
from containerlease_tui.tui.toasts import Toast

if TYPE_CHECKING:
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService


P = ParamSpec("P")


def while_open(method: Callable[P, None]) -> Callable[P, None]:
    """Skip a handler once the app is quitting: its widgets may already be gone."""

    @functools.wraps(method)
    def handler(*args: P.args, **kwargs: P.kwargs) -> None:
        app = args[0]
        assert isinstance(app, AppBase)
        if app.quitting:
            return
        method(*args, **kwargs)

    return handler


def short(exc: BaseException) -> str:
    """One line of an error, for a toast or the banner."""
    text = str(exc).strip()
    return one_line(text.splitlines()[0] if text else type(exc).__name__, 300)


class AppBase(App[None]):
    """The state every part of the app shares (set in ``ContainerLeaseApp.__init__``), and the
    helpers they all use: the literal ``notify``, ``quitting``, ``main``, the selected lease."""

    settings: Settings
    keymap: Keymap
    """The user's keys (the config's ``[keymap]`` and ``keymap.toml``) and their problems."""
    service: LeaseService | None
    """The open service, once the connect worker (or the caller) has given one."""
    reaper_enabled: bool
    clock: Callable[[], datetime]
    exit_note: str | None
    """What the user is told once the app has closed (a guardian reaper started)."""
    _given_service: LeaseService | None
    _user: str | None
    _all_users: bool
    _state_file: Path | None
    _reaper_stop: asyncio.Event
    _reaper_worker: Worker[None] | None
    _redis: tuple[bool | None, str]
    _docker: tuple[bool | None, str]
    _connect_error: str
    _toasted: set[tuple[str, str]]
    _quitting: bool
    _reaper_error: str | None
    _leaving: bool
    _signals: list[signal.Signals]
    _container_trouble: dict[str, str]
    """Lease id → what its container's trouble was last toasted as."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast, shown literally: every toast here is built from data (lease names, errors,
        paths, reasons from Redis), so ``markup`` is ignored (a folder named ``x[/b]y`` must
        not crash the app, nor a ``[@click=…]`` become a link) and terminal controls are made
        visible. Widgets' ``notify`` comes here too."""
        super().notify(
            clean(message, newlines=True),
            title=clean(title, tabs=False),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    @property
    def quitting(self) -> bool:
        """True from the moment the app starts to quit (handlers then leave the UI alone)."""
        return self._quitting or not self.is_running or bool(getattr(self, "_exit", False))

    @property
    def main(self) -> MainScreen:
        """The main screen (whatever modal is on top of it)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def _show_toast(self, toast: Toast) -> None:
        if toast.once is not None:
            if toast.once in self._toasted:
                return
            self._toasted.add(toast.once)
        self.notify(toast.text, title=toast.title, severity=toast.severity, timeout=toast.timeout)

    def _selected(self) -> Lease | None:
        lease = self.main.leases.table.selected
        if lease is None:
            self.notify("Select a lease first", severity="warning")
        return lease

    def _need_service(self) -> LeaseService | None:
        if self.service is None:
            self.notify("Not connected yet", severity="warning")
        return self.service
