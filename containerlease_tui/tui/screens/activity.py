"""The Activity screen: the event log, live, filterable; each row's equivalent command copyable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from containerlease_tui.activity import EventFilter, cli_equivalent
from containerlease_tui.backoff import Backoff
from containerlease_tui.models import LeaseEvent
from containerlease_tui.sanitize import clean, one_line
from containerlease_tui.tui.keys import ACTIVITY_KEYS

if TYPE_CHECKING:
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

HISTORY = 500
"""Past events the screen loads when it opens."""
KEPT = 2000
"""Events it keeps as new ones arrive (the oldest go)."""
COLUMNS = (
    ("time", "Time (UTC)"),
    ("actor", "Actor"),
    ("lease", "Lease"),
    ("what", "What"),
    ("detail", "Detail"),
    ("command", "Command"),
)


def _cell(text: str) -> Text:
    """A cell from untrusted text: controls shown, never obeyed; no markup."""
    return Text(clean(text, tabs=False))


def row_text(event: LeaseEvent) -> str:
    """What the filter box matches against."""
    return " ".join(
        (
            event.actor,
            event.owner,
            event.lease,
            event.type.value,
            event.detail,
            cli_equivalent(event) or "",
        )
    ).lower()


class ActivityScreen(Screen[None]):
    """Every event the user may see, newest at the bottom, following the stream."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = list(ACTIVITY_KEYS)
    AUTO_FOCUS = "#activity-table"

    def __init__(self, service: LeaseService, filt: EventFilter | None = None) -> None:
        super().__init__(id="activity-screen")
        self.service = service
        self.filt = filt
        self.events: list[LeaseEvent] = []
        self.text_filter = ""

    def compose(self) -> ComposeResult:
        yield Static(
            Content.from_markup("[b]Activity[/b]  [dim]who did what, live[/]"), id="activity-title"
        )
        yield Input(
            placeholder="filter: user, lease, type, text…", id="activity-filter", compact=True
        )
        yield DataTable(id="activity-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="activity-note")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#activity-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#activity-filter", Input).display = False
        self._follow()

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#activity-table", DataTable)

    def note(self, text: str) -> None:
        self.query_one("#activity-note", Static).update(Content(one_line(text)))

    # --- the stream ------------------------------------------------------------------------

    @work(group="activity", exclusive=True, exit_on_error=False)
    async def _follow(self) -> None:
        backoff = Backoff()
        cursor: str | None = None
        while True:
            try:
                if cursor is None:
                    history = await self.service.event_log(self.filt, limit=HISTORY)
                    cursor = history.cursor
                    self.events = list(history.events)
                    self._rebuild()
                    if history.trimmed and history.oldest is not None:
                        self.note(
                            f"older events are gone: the log keeps the last "
                            f"{history.maxlen} or so (oldest {history.oldest:%Y-%m-%d %H:%M} UTC)"
                        )
                    else:
                        self.note(f"{len(self.events)} events")
                    backoff.reset()
                batch = await self.service.events(after=cursor, block_ms=2000)
                cursor = batch.cursor
                shown = self.service.shown(batch.events, self.filt)
                if shown:
                    self.add_events(shown)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                cursor = None
                self.note(f"cannot read the event log (retrying): {exc}")
                await asyncio.sleep(backoff.next())

    def add_events(self, events: list[LeaseEvent]) -> None:
        """New events, at the bottom (the cursor follows if it was on the last row)."""
        table = self.table
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        self.events.extend(events)
        if len(self.events) > KEPT:
            del self.events[: len(self.events) - KEPT]
            self._rebuild()
        else:
            for event in events:
                if self._matches(event):
                    self._add_row(event)
        if at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def _matches(self, event: LeaseEvent) -> bool:
        return not self.text_filter or self.text_filter in row_text(event)

    def _add_row(self, event: LeaseEvent) -> None:
        self.table.add_row(
            _cell(f"{event.at:%m-%d %H:%M:%S}"),
            _cell(event.actor or event.owner),
            _cell(event.lease),
            _cell(event.type.value),
            _cell(one_line(event.detail, 80)),
            _cell(cli_equivalent(event) or ""),
            key=event.id,
        )

    def _rebuild(self) -> None:
        table = self.table
        table.clear()
        for event in self.events:
            if self._matches(event):
                self._add_row(event)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    # --- keys ------------------------------------------------------------------------------

    @property
    def selected(self) -> LeaseEvent | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((e for e in self.events if e.id == key), None)

    def action_copy(self) -> None:
        """Copy the selected event's equivalent command line (OSC 52)."""
        event = self.selected
        command = cli_equivalent(event) if event is not None else None
        if command is None:
            self.notify(
                "No command does this (the reaper's or provisioning's work)", severity="warning"
            )
            return
        self.app.copy_to_clipboard(command)
        self.notify(f"Copied: {command}")

    def action_filter(self) -> None:
        box = self.query_one("#activity-filter", Input)
        box.display = True
        box.focus()

    def action_new_lease(self) -> None:
        """Back to the main screen, in the provision form."""
        self.dismiss()
        self.app.call_later(self.app.run_action, "new_lease")

    def action_back(self) -> None:
        box = self.query_one("#activity-filter", Input)
        if box.has_focus:
            box.value = ""
            box.display = False
            self.table.focus()
            return
        self.dismiss()

    @on(Input.Changed, "#activity-filter")
    def _on_filter(self, event: Input.Changed) -> None:
        self.text_filter = event.value.strip().lower()
        self._rebuild()

    @on(Input.Submitted, "#activity-filter")
    def _on_filter_done(self) -> None:
        self.table.focus()
