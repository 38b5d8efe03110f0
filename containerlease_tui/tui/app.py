"""The ContainerLease terminal app: a thin shell over LeaseService and the Reaper.

``ContainerLeaseApp`` composes the parts in ``tui/parts/``, one job each: the workers do the I/O
(opening the service, following the event stream, health checks, the in-app reaper,
provisioning and other actions) and only post messages; the ``@on`` handlers of the status and
actions parts own the state; the views part switches screens; the shutdown part quits. Every
exception a worker meets becomes a toast or the banner: the app stays up while Redis or Docker
are down and recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.theme import Theme

from containerlease_tui.config import Settings
from containerlease_tui.models import utcnow
from containerlease_tui.tui.keys import (
    GLOBAL_KEYS,
    LEASE_KEYS,
    LOGS_ALIAS,
    VIEW_KEYS,
    hidden,
    load_user_keymap,
)
from containerlease_tui.tui.messages import ServiceReady
from containerlease_tui.tui.parts.actions import ActionsPart
from containerlease_tui.tui.parts.shutdown import ShutdownPart
from containerlease_tui.tui.parts.status import StatusPart
from containerlease_tui.tui.parts.views import ViewsPart
from containerlease_tui.tui.screens import MainScreen

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

HERE = Path(__file__).parent
GC_THRESHOLDS = (20_000, 20, 20)
"""Python's defaults (700, 10, 10) collect many times per log batch of rendered lines."""


_GC_TUNED: list[bool] = []


def _tune_gc() -> None:
    """Once per process: what is alive once the app is up (Textual, the widgets, the modules)
    lives as long as the app, so it leaves the cyclic collector's sight, and the collector runs
    less often. Under a log flood this halves the key-to-repaint tail (docs/benchmarks.md)."""
    if _GC_TUNED:
        return
    _GC_TUNED.append(True)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


STATE_FILE = "app.json"
"""What the app remembers between runs (the theme), in the user's state folder."""


def _read_state(path: Path | None) -> dict[str, object]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ContainerLeaseApp(ShutdownPart, ViewsPart, ActionsPart, StatusPart):
    """Lease Docker containers from the keyboard: provision, watch, extend, delete, shell in."""

    TITLE = "ContainerLease"
    CSS_PATH = [
        HERE / "app.tcss",
        HERE / "screens" / "main.tcss",
        HERE / "widgets" / "provision_form.tcss",
        HERE / "widgets" / "lease_table.tcss",
        HERE / "widgets" / "log_pane.tcss",
        HERE / "widgets" / "status_bar.tcss",
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *GLOBAL_KEYS,
        LOGS_ALIAS,
        *(hidden(binding) for binding in LEASE_KEYS if binding.key != "enter"),
        *(replace(binding, show=False) for binding in VIEW_KEYS),
    ]
    """``n ? q`` in every footer; the lease keys work from anywhere but show on the table."""

    def __init__(
        self,
        settings: Settings,
        *,
        service: LeaseService | None = None,
        user: str | None = None,
        reaper: bool = True,
        clock: Callable[[], datetime] = utcnow,
        keymap_dir: Path | None = None,
        all_users: bool = False,
        state_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.keymap = load_user_keymap(keymap_dir, settings.keymap)
        self.set_keymap(self.keymap.textual())
        self._all_users = all_users
        self._state_file = state_dir / STATE_FILE if state_dir is not None else None
        saved = _read_state(self._state_file).get("theme")
        if isinstance(saved, str) and saved in self.available_themes:
            self.theme = saved
        settings.display.apply()
        self.service = None
        self._given_service = service
        self._user = user
        self.reaper_enabled = reaper
        self.clock = clock
        self._reaper_stop = asyncio.Event()
        self._reaper_worker = None
        self._redis = (None, "")
        self._docker = (None, "")
        self._connect_error = ""
        self._toasted = set()
        self._quitting = False
        self._reaper_error = None
        self._leaving = False
        self._signals = []
        self.exit_note = None
        self._container_trouble = {}

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(self.settings)

    def on_ready(self) -> None:
        """Start once the main screen is composed: the clock, then the service (in a worker)."""
        _tune_gc()
        if not self.is_headless:
            self._catch_hang_up()
        self.main.status.user = self._user or (
            self._given_service.user if self._given_service else ""
        )
        self.main.status.in_app_reaper = None
        self.main.status.reaper_disabled = not self.reaper_enabled
        self.theme_changed_signal.subscribe(self, self._save_theme)
        self.main.leases.show_all = self._all_users
        for problem in self.keymap.problems:
            self.notify(problem, title="Keymap", severity="warning", timeout=20)
        self._tick()
        self.set_interval(1.0, self._tick)
        if self._given_service is not None:
            self.post_message(ServiceReady(self._given_service))
        else:
            self._connect()

    def _save_theme(self, theme: Theme) -> None:
        """The chosen theme, kept for the next start (the palette's "Change theme")."""
        if self._state_file is None:
            return
        state = _read_state(self._state_file)
        state["theme"] = theme.name
        with contextlib.suppress(OSError):
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            tmp.replace(self._state_file)

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: DOMNode) -> None:
        """Conflicts in the user's keymap are found and reported once, at load
        (``keys.build_keymap``), and the conflicting entries are not applied."""


def create_app(
    settings: Settings,
    *,
    service: LeaseService | None = None,
    user: str | None = None,
    reaper: bool = True,
    clock: Callable[[], datetime] = utcnow,
    keymap_dir: Path | None = None,
    all_users: bool = False,
    state_dir: Path | None = None,
) -> ContainerLeaseApp:
    """The app the CLI runs: ``create_app(settings, reaper=not no_reaper).run()``.

    ``service``: an open :class:`LeaseService` to use (tests); by default the app opens one in a
    worker and closes it on exit. ``user``: act as this user (default: the OS user).
    ``reaper``: run a reaper inside the app. ``clock``: what "now" is (countdowns, costs).
    ``keymap_dir``: the folder whose ``keymap.toml`` is read (the CLI passes the user's config
    folder; by default none, only the config's ``[keymap]``). ``all_users``: start on
    everybody's leases (by default on the user's own, as ``containerlease ls`` does).
    ``state_dir``: where the chosen theme is kept across runs (the CLI passes the user's state
    folder; by default nowhere).
    """
    return ContainerLeaseApp(
        settings,
        service=service,
        user=user,
        reaper=reaper,
        clock=clock,
        keymap_dir=keymap_dir,
        all_users=all_users,
        state_dir=state_dir,
    )
