"""The leases pane: a text filter, the lease table with live countdowns, and a totals line."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.coordinate import Coordinate
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey, RowKey

from containerlease_tui.display import format_cost
from containerlease_tui.models import Lease, LeaseStatus, utcnow
from containerlease_tui.sanitize import clean
from containerlease_tui.tui.formatting import cost_cell, time_left_cell
from containerlease_tui.tui.keys import TABLE_KEYS
from containerlease_tui.tui.widgets.inputs import FilterInput

HISTORY = timedelta(hours=1)
"""Closed leases stay in the table this long after they ended."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("lease", "Lease"),
    ("status", "Status"),
    ("left", "Time left"),
    ("cost", "Cost now/est."),
    ("image", "Image"),
    ("owner", "Owner"),
    ("container", "Container"),
)
"""(key, header): the columns that matter most come first, for narrow terminals."""


def aged_out(lease: Lease, now: datetime) -> bool:
    """A closed lease that ended more than :data:`HISTORY` ago (it leaves the table)."""
    return (
        not lease.status.is_active and lease.ended_at is not None and now - lease.ended_at > HISTORY
    )


def _safe(text: str) -> str:
    return clean(text, tabs=False)


def _sort_key(lease: Lease) -> tuple[int, float]:
    if lease.status.is_active or (lease.status is LeaseStatus.FAILED and not lease.ended_at):
        return (0, -lease.created_at.timestamp())
    return (1, -(lease.ended_at or lease.created_at).timestamp())


class LeaseTable(DataTable[Text | str]):
    """Leases, one per row keyed by lease id; status colours come from component classes.

    Its bindings put the lease keys in the footer while it has focus (``n`` first, so the
    footer reads in the order people use it); the app runs them.
    """

    BINDINGS: ClassVar[list[BindingType]] = list(TABLE_KEYS)

    COMPONENT_CLASSES = {f"lease-table--{status.value}" for status in LeaseStatus} | {
        "lease-table--id",
        "lease-table--mine",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.user = ""
        self._shown: dict[str, Lease] = {}
        self._ticking: dict[tuple[str, str], str] = {}
        """(lease id, column key) → the text a ticking cell shows: a tick repaints only the
        cells whose text changed (a countdown in minutes changes once a minute)."""

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Once idle, DataTable sizes the columns to the new rows, but keeps the lines it
        already rendered at the old widths; until now the next countdown tick repainted them
        (every second, the whole table). Ticks repaint only changed cells now, so the table
        repaints itself once after sizing."""
        super()._update_dimensions(new_rows)
        self._update_count += 1
        self.refresh()

    @property
    def shown(self) -> dict[str, Lease]:
        """The leases in the table, by id."""
        return self._shown

    @property
    def selected(self) -> Lease | None:
        """The lease under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except Exception:
            return None
        return self._shown.get(str(key.value))

    def _status(self, lease: Lease) -> Text:
        style = self.get_component_rich_style(f"lease-table--{lease.status.value}", partial=True)
        return Text(lease.status.value, style=style)

    def _cells(self, lease: Lease, now: datetime) -> list[Text | str]:
        """Every cell a :class:`Text` (a ``str`` cell would be parsed as markup), every field
        of the record with its controls made visible."""
        id_style = self.get_component_rich_style("lease-table--id", partial=True)
        name = Text.assemble(_safe(lease.name), " ", (_safe(lease.id), id_style))
        owner_style = (
            self.get_component_rich_style("lease-table--mine", partial=True)
            if lease.owner == self.user
            else ""
        )
        return [
            name,
            self._status(lease),
            Text(time_left_cell(lease, now)),
            Text(cost_cell(lease, now)),
            Text(_safe(lease.image)),
            Text(_safe(lease.owner), style=owner_style),
            Text(_safe(lease.short_docker_id or "—")),
        ]

    def show(self, leases: list[Lease], now: datetime) -> None:
        """Show exactly these leases, in this order, keeping the cursor on the same lease."""
        order = [lease.id for lease in leases]
        self._shown = {lease.id: lease for lease in leases}
        if [str(row.value) for row in self.rows] == order:
            for lease in leases:
                for (key, _), value in zip(COLUMNS, self._cells(lease, now), strict=True):
                    self.update_cell(lease.id, key, value)
                self._remember(lease, now)
            return
        selected = self.selected
        self.clear()
        self._ticking = {}
        for lease in leases:
            self.add_row(*self._cells(lease, now), key=lease.id)
            self._remember(lease, now)
        if selected is not None and selected.id in self._shown:
            self.move_cursor(row=self.get_row_index(selected.id), animate=False)

    def _remember(self, lease: Lease, now: datetime) -> None:
        self._ticking[lease.id, "left"] = time_left_cell(lease, now)
        self._ticking[lease.id, "cost"] = cost_cell(lease, now)

    def _tick_row(self, lease: Lease, now: datetime) -> None:
        for key, text in (("left", time_left_cell(lease, now)), ("cost", cost_cell(lease, now))):
            if self._ticking.get((lease.id, key)) != text:
                self._ticking[lease.id, key] = text
                self.set_ticking_cell(lease.id, key, text)

    def set_ticking_cell(self, lease_id: str, key: str, text: str) -> None:
        """Change one countdown or cost cell and repaint that cell alone.

        ``DataTable.update_cell`` repaints the whole table (every visible row goes to the
        terminal again, ~12 KiB a second for a countdown); the text of a ticking cell changes
        but never its width, so this sets the cell the way ``update_cell`` does and refreshes
        only the cell's region. Falls back to ``update_cell`` if Textual's internals move.
        """
        row, column = RowKey(lease_id), ColumnKey(key)
        try:
            cells = self._data.get(row, {})
            row_index = self._row_locations.get(row)
            column_index = self._column_locations.get(column)
        except AttributeError:
            row_index = column_index = None
        if row_index is None or column_index is None or column not in cells:
            self.update_cell(lease_id, key, Text(text))  # (raises CellDoesNotExist if gone)
            return
        where = Coordinate(row_index, column_index)
        cells[column] = Text(text)
        self._update_count += 1
        self.refresh_coordinate(where)

    def tick(self, now: datetime) -> None:
        """Move the countdowns and the accrued costs on: only the cells whose text changed are
        updated (and so repainted); an idle table with nothing due costs nothing."""
        for lease in self._shown.values():
            if lease.status.is_active:
                self._tick_row(lease, now)

    def select_lease(self, lease_id: str) -> None:
        """Put the cursor on a lease if it is shown."""
        if lease_id in self._shown:
            self.move_cursor(row=self.get_row_index(lease_id), animate=False)


class LeasesPane(Vertical):
    """Lease filter (``/``), scope (``a``: mine / all), table and totals."""

    show_all: reactive[bool] = reactive(True)
    text_filter: reactive[str] = reactive("")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.user = ""
        self.now: datetime = utcnow()
        self._leases: dict[str, Lease] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(id="lease-bar"):
            yield FilterInput(id="lease-filter", placeholder="/ filter leases", compact=True)
            yield Static(id="lease-scope")
        yield LeaseTable(id="lease-table")
        yield Static(id="lease-totals")

    @property
    def table(self) -> LeaseTable:
        """The lease table."""
        return self.query_one(LeaseTable)

    @property
    def leases(self) -> dict[str, Lease]:
        """Every lease known to the pane, by id (shown or filtered out)."""
        return self._leases

    def set_user(self, user: str) -> None:
        """Whose leases are "mine" (once the service is open)."""
        self.user = user
        self.table.user = user
        self._refresh_rows()

    def set_leases(self, leases: Iterable[Lease], now: datetime) -> None:
        """Replace every lease (a fresh read of the store)."""
        self._leases = {lease.id: lease for lease in leases}
        self.now = now
        self._refresh_rows()

    def update_lease(self, lease: Lease, now: datetime) -> None:
        """One lease changed (by this app, ahead of the event stream)."""
        current = self._leases.get(lease.id)
        if current is not None and current.status.is_terminal and not lease.status.is_terminal:
            return  # an older copy: the stream already told us it is closed
        self._leases[lease.id] = lease
        self.now = now
        self._refresh_rows()

    def shown_leases(self) -> list[Lease]:
        """The leases the scope and the text filter let through, in table order."""
        needle = self.text_filter.strip().lower()
        out = []
        for lease in self._leases.values():
            if not self.show_all and lease.owner != self.user:
                continue
            if aged_out(lease, self.now):
                continue
            if needle:
                hay = " ".join(
                    (lease.name, lease.id, lease.image, lease.owner, lease.status.value)
                ).lower()
                if needle not in hay:
                    continue
            out.append(lease)
        return sorted(out, key=_sort_key)

    def _refresh_rows(self) -> None:
        if not self.is_mounted:
            return
        shown = self.shown_leases()
        self.table.show(shown, self.now)
        self._show_totals(shown)

    def _show_totals(self, shown: list[Lease]) -> None:
        active = [lease for lease in shown if lease.status.is_active]
        per_hour = sum((lease.hourly_rate for lease in active), Decimal(0))
        plural = "" if len(shown) == 1 else "s"
        self.query_one("#lease-totals", Static).update(
            Content.from_markup(
                f"[b]{len(shown)}[/b] lease{plural} · [b]{len(active)}[/b] active "
                f"costing [b]{format_cost(per_hour)}/h[/b]"
            )
        )

    def tick(self, now: datetime) -> None:
        """Called every second: countdowns, costs, and closed leases ageing out."""
        self.now = now
        if any(aged_out(lease, now) for lease in self.table.shown.values()):
            self._refresh_rows()
        else:
            self.table.tick(now)

    def watch_show_all(self, show_all: bool) -> None:
        self.query_one("#lease-scope", Static).update(
            Content.from_markup(
                "[b]all users[/b] [dim](a)[/]" if show_all else "[b]mine[/b] [dim](a)[/]"
            )
        )
        self._refresh_rows()

    def watch_text_filter(self) -> None:
        self._refresh_rows()

    @on(Input.Changed, "#lease-filter")
    def _on_filter(self, event: Input.Changed) -> None:
        event.stop()
        self.text_filter = event.value

    @on(Input.Submitted, "#lease-filter")
    def _on_filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    @on(FilterInput.Cleared, "#lease-filter")
    def _on_filter_cleared(self, event: FilterInput.Cleared) -> None:
        event.stop()
        self.table.focus()

    def focus_filter(self) -> None:
        """Put the cursor in the text filter (the ``/`` key)."""
        self.query_one("#lease-filter", Input).focus()
