"""The leases pane: a text filter, the lease table with live countdowns, and a totals line."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
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

from containerlease_tui.display import format_cost, format_ports, ssh_forward
from containerlease_tui.models import Lease, LeaseStatus, utcnow
from containerlease_tui.sanitize import clean
from containerlease_tui.tui.formatting import cost_cell, time_left_cell
from containerlease_tui.tui.keys import TABLE_KEYS, TABLE_NAV
from containerlease_tui.tui.widgets.inputs import FilterInput

if TYPE_CHECKING:
    from containerlease_tui.leases import ContainerState
    from containerlease_tui.policy import LeasePolicy

OVERDUE_NO_REAPER = "overdue — no reaper"
OVERDUE = "overdue — being reaped"

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


def _by_left(lease: Lease) -> tuple[int, float]:
    return (0 if lease.status.is_active else 1, lease.expires_at.timestamp())


def _by_cost(lease: Lease) -> tuple[float]:
    return (-float(lease.estimated_cost),)


def _by_owner(lease: Lease) -> tuple[str, int, float]:
    return (lease.owner, *_sort_key(lease))


def _by_status(lease: Lease) -> tuple[str, int, float]:
    return (lease.status.value, *_sort_key(lease))


SORTS: tuple[tuple[str, Callable[[Lease], tuple[object, ...]]], ...] = (
    ("newest (active first)", _sort_key),
    ("time left", _by_left),
    ("cost (highest first)", _by_cost),
    ("owner", _by_owner),
    ("status", _by_status),
)
"""The table's orders, in the order ``o`` (or a click on a header) steps through them."""
SORT_COLUMNS = {"left": 1, "cost": 2, "owner": 3, "status": 4}
"""Which order a click on a column header picks."""


class LeaseTable(DataTable[Text | str]):
    """Leases, one per row keyed by lease id; status colours come from component classes.

    Its bindings put the lease keys in the footer while it has focus (``n`` first, so the
    footer reads in the order people use it); the app runs them.
    """

    BINDINGS: ClassVar[list[BindingType]] = [*TABLE_KEYS, *TABLE_NAV]

    COMPONENT_CLASSES = {f"lease-table--{status.value}" for status in LeaseStatus} | {
        "lease-table--id",
        "lease-table--mine",
        "lease-table--soon",
        "lease-table--urgent",
        "lease-table--trouble",
        "lease-table--health-starting",
        "lease-table--health-unhealthy",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.user = ""
        self._shown: dict[str, Lease] = {}
        self.containers: dict[str, ContainerState] = {}
        """What each lease's container really does (from the app's engine watch)."""
        self.policy: LeasePolicy | None = None
        """The warning points the time-left cell colours by (once the service is open)."""
        self.reaper_running = True
        """False with ``--no-reaper``: an overdue lease then says nobody will remove it."""
        self._looks: dict[tuple[str, str], str] = {}
        """(lease id, column key) → what the cell shows (text and style): a tick or a new
        container state repaints only the cells whose look changed (a countdown in minutes
        changes once a minute, a health check's verdict now and then)."""

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
        """The lease's status; what its container really does when that differs; a running
        container's health check verdict beside it (``running (unhealthy)``, in the error
        colour; ``starting`` in the warning colour)."""
        state = self.containers.get(lease.id)
        if state is not None and state.trouble_for(lease):
            style = self.get_component_rich_style("lease-table--trouble", partial=True)
            return Text(state.describe(), style=style)
        health = health_of(lease, state)
        component = f"lease-table--{lease.status.value}"
        if health in ("starting", "unhealthy"):
            component = f"lease-table--health-{health}"
        style = self.get_component_rich_style(component, partial=True)
        text = lease.status.value if health is None else f"{lease.status.value} ({health})"
        return Text(text, style=style)

    def _left(self, lease: Lease, now: datetime) -> Text:
        """The countdown, amber past the lease's first warning point, red past its second
        (its only one, for a short lease);
        an overdue lease says so (and whether a reaper will remove it)."""
        if not lease.status.is_active:
            return Text(time_left_cell(lease, now))
        left = (lease.expires_at - now).total_seconds()
        urgent = self.get_component_rich_style("lease-table--urgent", partial=True)
        if left <= 0:
            return Text(OVERDUE if self.reaper_running else OVERDUE_NO_REAPER, style=urgent)
        points = self.policy.warning_points(lease) if self.policy is not None else []
        style: Style | str = ""
        if points and left <= points[min(1, len(points) - 1)].total_seconds():
            style = urgent
        elif points and left <= points[0].total_seconds():
            style = self.get_component_rich_style("lease-table--soon", partial=True)
        return Text(time_left_cell(lease, now), style=style)

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
            self._left(lease, now),
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
            # The same rows: repaint only the cells that changed (a health verdict, a status).
            for lease in leases:
                for (key, _), value in zip(COLUMNS, self._cells(lease, now), strict=True):
                    self._put(lease.id, key, value)
            return
        selected = self.selected
        self.clear()
        self._looks = {}
        for lease in leases:
            cells = self._cells(lease, now)
            self.add_row(*cells, key=lease.id)
            for (key, _), cell in zip(COLUMNS, cells, strict=True):
                self._looks[lease.id, key] = _look(cell)
        if selected is not None and selected.id in self._shown:
            self.move_cursor(row=self.get_row_index(selected.id), animate=False)

    def _put(self, lease_id: str, key: str, cell: Text | str) -> None:
        """Set one cell if its look changed: that cell alone is repainted when it still fits
        its column; a wider one (``running (unhealthy)``) widens the column first."""
        look = _look(cell)
        if self._looks.get((lease_id, key)) == look:
            return
        self._looks[lease_id, key] = look
        column = self.columns.get(ColumnKey(key))
        text = cell if isinstance(cell, Text) else Text(cell)
        if column is not None and text.cell_len <= column.content_width:
            self.set_ticking_cell(lease_id, key, text)
        else:
            self.update_cell(lease_id, key, cell, update_width=True)

    def _ticking_cells(self, lease: Lease, now: datetime) -> tuple[tuple[str, Text], ...]:
        return (("left", self._left(lease, now)), ("cost", Text(cost_cell(lease, now))))

    def _tick_row(self, lease: Lease, now: datetime) -> None:
        for key, cell in self._ticking_cells(lease, now):
            look = _look(cell)  # the countdown's colour counts, not only its text
            if self._looks.get((lease.id, key)) != look:
                self._looks[lease.id, key] = look
                self.set_ticking_cell(lease.id, key, cell)

    def set_ticking_cell(self, lease_id: str, key: str, cell: Text) -> None:
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
            self.update_cell(lease_id, key, cell)  # (raises CellDoesNotExist if gone)
            return
        where = Coordinate(row_index, column_index)
        cells[column] = cell
        self._update_count += 1
        self.refresh_coordinate(where)

    def tick(self, now: datetime) -> None:
        """Move the countdowns and the accrued costs on: only the cells whose look changed are
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

    show_all: reactive[bool] = reactive(False)
    """Start on my leases, as ``containerlease ls`` does (``a``: everybody's)."""
    text_filter: reactive[str] = reactive("")
    sort_index: reactive[int] = reactive(0)
    """Which of :data:`SORTS` orders the table."""

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
        yield Static(id="lease-detail")
        yield Static(id="lease-totals")

    @property
    def table(self) -> LeaseTable:
        """The lease table."""
        return self.query_one(LeaseTable)

    @property
    def leases(self) -> dict[str, Lease]:
        """Every lease known to the pane, by id (shown or filtered out)."""
        return self._leases

    @property
    def containers(self) -> dict[str, ContainerState]:
        """The real state of the leases' containers, by lease id."""
        return self.table.containers

    @property
    def policy(self) -> LeasePolicy | None:
        return self.table.policy

    @policy.setter
    def policy(self, policy: LeasePolicy) -> None:
        self.table.policy = policy
        self._refresh_rows()

    @property
    def reaper_running(self) -> bool:
        return self.table.reaper_running

    @reaper_running.setter
    def reaper_running(self, running: bool) -> None:
        self.table.reaper_running = running
        self._refresh_rows()

    def set_containers(self, states: dict[str, ContainerState]) -> None:
        """What the engine says the containers do (rows change only where it differs)."""
        if states == self.table.containers:
            return
        self.table.containers = dict(states)
        self._refresh_rows()

    @property
    def sort_name(self) -> str:
        return SORTS[self.sort_index][0]

    def next_sort(self) -> None:
        """The next order of :data:`SORTS`."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)

    def watch_sort_index(self) -> None:
        self._refresh_rows()

    @on(DataTable.HeaderSelected, "#lease-table")
    def _on_header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        wanted = SORT_COLUMNS.get(str(event.column_key.value), 0)
        self.sort_index = 0 if wanted == self.sort_index else wanted

    @on(DataTable.RowHighlighted, "#lease-table")
    def _on_highlight(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """Lines under the table on the selected lease: why it failed or what is wrong with
        its container (in the error colour), then where its ports are published."""
        detail = self.query_one("#lease-detail", Static)
        lease = self.table.selected
        lines = self.detail_lines(lease) if lease is not None else []
        detail.display = bool(lines)
        if lines:
            detail.update(Content("\n").join(lines))

    def detail_text(self, lease: Lease) -> str | None:
        """What the detail lines say on ``lease``, as plain text (None: nothing worth a line)."""
        return "\n".join(line.plain for line in self.detail_lines(lease)) or None

    def detail_lines(self, lease: Lease) -> list[Content]:
        """The trouble line (failure reason, the container's real state or failing health
        check), then the ports line with the ``ssh -L`` a remote user runs; either may be
        missing. Every field is made one safe line."""
        lines = []
        trouble = self._trouble(lease)
        if trouble is not None:
            lines.append(Content.styled(trouble, "$error"))
        ports = self._ports_line(lease)
        if ports is not None:
            lines.append(ports)
        return lines

    def _trouble(self, lease: Lease) -> str | None:
        name = _safe(lease.name)
        if lease.status is LeaseStatus.FAILED and lease.error:
            return f"{name} failed: {_safe(lease.error)}"
        state = self.table.containers.get(lease.id)
        if state is not None and state.trouble_for(lease):
            return f"{name}: container {state.describe()} — the lease is still open and billed"
        if health_of(lease, state) == "unhealthy":
            return f"{name}: container unhealthy — its health check fails"
        return None

    def _ports_line(self, lease: Lease) -> Content | None:
        """``ports 8080/tcp → 127.0.0.1:49153 · from elsewhere: ssh -L …``, while the lease
        runs and its container does (a stopped container's ports are gone)."""
        state = self.table.containers.get(lease.id)
        if lease.status is not LeaseStatus.RUNNING or (
            state is not None and state.trouble_for(lease)
        ):
            return None
        ports = format_ports(lease.ports)
        if ports is None:
            return None
        parts: list[str | tuple[str, str]] = [("ports ", "$text-muted"), ports]
        ssh = ssh_forward(lease.ports, lease.host)
        if ssh is not None:
            parts += [("  ·  from elsewhere: ", "$text-muted"), ssh]
        return Content.assemble(*parts)

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
        return sorted(out, key=SORTS[self.sort_index][1])

    def _refresh_rows(self) -> None:
        if not self.is_mounted:
            return
        shown = self.shown_leases()
        self.table.show(shown, self.now)
        self._show_totals(shown)
        self._show_detail()

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


def _look(cell: Text | str) -> str:
    """What a cell shows: its text and its styles (the spans too: the lease cell's id)."""
    if isinstance(cell, str):
        return cell
    spans = ";".join(f"{span.start},{span.end},{span.style}" for span in cell.spans)
    return f"{cell.plain}|{cell.style}|{spans}"


HEALTH_STATES = frozenset({"starting", "healthy", "unhealthy"})
"""Docker's health check verdicts; anything else from the engine is not shown."""


def health_of(lease: Lease, state: ContainerState | None) -> str | None:
    """The health check verdict worth showing beside a running lease (None: no check, another
    status, or a word Docker does not use)."""
    if lease.status is not LeaseStatus.RUNNING or state is None or not state.running:
        return None
    return state.health if state.health in HEALTH_STATES else None
