"""The views: switching to the Activity, Team, Reapers and Help screens; the command palette."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen

from containerlease_tui.sanitize import one_line
from containerlease_tui.tui.keys import (
    ACTIVITY_KEYS,
    FILTER_KEYS,
    FORM_KEYS,
    FORM_SUBMIT,
    GLOBAL_KEYS,
    LEASE_KEYS,
    LOG_KEYS,
    LOGS_ALIAS,
    TABLE_NAV,
    VIEW_BACK,
    VIEW_KEYS,
    key_label,
)
from containerlease_tui.tui.parts.base import AppBase
from containerlease_tui.tui.screens import (
    ActivityScreen,
    HelpScreen,
    ReapersScreen,
    TeamScreen,
)

if TYPE_CHECKING:
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService


class ViewsPart(AppBase):
    """The other screens (Activity, Team, Reapers, Help) and the command palette's commands."""

    def _open_view(self, make: Callable[[LeaseService], Screen[None]], kind: type) -> None:
        service = self._need_service()
        if service is None or isinstance(self.screen, kind):
            return
        self.push_screen(make(service))

    def action_activity(self) -> None:
        """The Activity screen: every event, live."""
        self._open_view(ActivityScreen, ActivityScreen)

    def action_team(self) -> None:
        """The Team screen: spend, budget, capacity."""
        self._open_view(TeamScreen, TeamScreen)

    def action_reapers(self) -> None:
        """The Reapers screen: who cleans up, and when next."""
        self._open_view(ReapersScreen, ReapersScreen)

    def action_help(self) -> None:
        """Show every key."""
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_sections(), self.reaper_note()))

    def reaper_note(self) -> Content:
        """The reaper's state in full (the status bar may have to shorten it)."""
        return Content.from_markup(
            "[b]Reaper:[/b] $line. A reaper removes leases at their deadline; "
            "the app runs one unless started with --no-reaper.",
            line=one_line(self.main.status.reaper_text),
        )

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The keys of each part of the app, from the bindings themselves (``keys.py``)."""

        def rows(
            bindings: Iterable[Binding], extra: dict[str, str] | None = None
        ) -> list[tuple[str, str]]:
            keys: dict[str, list[str]] = {}
            what: dict[str, str] = {}
            for binding in bindings:
                if not binding.description:
                    continue
                action = binding.action.removeprefix("app.")
                keys.setdefault(action, []).append(key_label(binding, self.keymap))
                what.setdefault(action, binding.tooltip or binding.description)
            listed = [(", ".join(dict.fromkeys(keys[a])), what[a]) for a in keys]
            return listed + [(keys, what) for keys, what in (extra or {}).items()]

        pause = next(b for b in LOG_KEYS if b.action == "pause")
        log_keys = [b for b in LOG_KEYS if b.action != "resume"]
        log_keys[log_keys.index(pause)] = replace(pause, tooltip="Pause / resume following")
        return [
            (
                "Everywhere (except while typing in a box)",
                rows(
                    GLOBAL_KEYS,
                    {"ctrl+p": "Command palette: every action by name", "ctrl+q": "Quit"},
                ),
            ),
            (
                "Leases table (these work from the log pane too)",
                rows(
                    [*LEASE_KEYS[:1], LOGS_ALIAS, *LEASE_KEYS[1:], *TABLE_NAV],
                    {"↑ ↓": "Select a lease (or click it)"},
                ),
            ),
            ("Views (v, T, R)", rows(VIEW_KEYS)),
            ("Activity (after v)", rows(ACTIVITY_KEYS)),
            ("Team and Reapers (after T or R)", rows(VIEW_BACK)),
            ("Logs pane (after enter or l)", rows(log_keys)),
            ("Provision form (after n)", rows([FORM_SUBMIT, *FORM_KEYS])),
            ("Filter boxes (/ and f)", rows(FILTER_KEYS)),
            ("Dialogs", [("y / n, esc", "Confirm / cancel")]),
        ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands, then every key of the app by name (the help screen's list)."""
        yield from super().get_system_commands(screen)

        def app_command(binding: Binding, keys: str) -> SystemCommand:
            action = binding.action.removeprefix("app.")
            return SystemCommand(
                f"{binding.description} ({keys})",
                binding.tooltip or binding.description,
                lambda: self.run_action(action),
            )

        yield app_command(GLOBAL_KEYS[0], key_label(GLOBAL_KEYS[0], self.keymap))
        for binding in LEASE_KEYS:
            keys = key_label(binding, self.keymap)
            if binding.action == "app.logs":
                keys = f"{keys}, {key_label(LOGS_ALIAS, self.keymap)}"
            yield app_command(binding, keys)
        for binding in VIEW_KEYS:
            yield app_command(binding, key_label(binding, self.keymap))
        yield app_command(GLOBAL_KEYS[1], key_label(GLOBAL_KEYS[1], self.keymap))
        logs = self.main.logs
        for binding in LOG_KEYS:
            if binding.action in ("pause", "resume") or binding.action.startswith("app."):
                continue
            action = binding.action
            yield SystemCommand(
                f"Logs: {binding.description} ({key_label(binding, self.keymap)})",
                binding.tooltip or binding.description,
                functools.partial(logs.run_action, action),
            )
        yield SystemCommand(
            f"Logs: Pause / resume ({self.keymap.label('log_pause')})",
            "Pause or resume following the output",
            functools.partial(logs.run_action, "toggle_pause"),
        )
