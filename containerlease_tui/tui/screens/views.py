"""The Team and Reapers screens: what the team spends and what the box has left; who cleans up.

Both read through the service, refresh themselves every few seconds (and on ``ctrl+r``), and
show only text from records cleaned of controls (no markup from data)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from containerlease_tui.display import format_cost, format_rate, time_left
from containerlease_tui.models import format_memory, utcnow
from containerlease_tui.sanitize import clean, one_line
from containerlease_tui.spend import Capacity, Outlook, TeamSpend, format_hours
from containerlease_tui.tui.formatting import size
from containerlease_tui.tui.keys import VIEW_BACK

if TYPE_CHECKING:
    from containerlease_tui.leases import ReaperOverview
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

TEAM_REFRESH = 5.0
REAPERS_REFRESH = 2.0


def _cell(text: str) -> Text:
    return Text(clean(text, tabs=False))


def budget_text(outlook: Outlook) -> str:
    """``you: $1.20 today · 3 of 8 lease-hours booked, 5 left · 2 of 5 leases``."""
    if outlook.budget_hours is None:
        budget = "no daily budget"
    else:
        budget = (
            f"{format_hours(outlook.booked_hours)} of {format_hours(outlook.budget_hours)} "
            f"lease-hours booked today, {format_hours(outlook.remaining_hours or Decimal(0))} left"
        )
    return (
        f"you: {format_cost(outlook.spent_today)} today · {budget} · "
        f"{outlook.active_mine} of {outlook.max_per_user} leases"
    )


def capacity_text(box: Capacity) -> str:
    """``box: 3 of 20 leases · 1.5 of 8 CPUs · 768m of 15.6 GiB reserved``."""
    cpus = (
        f"{box.cpus_reserved:g} of {box.host_cpus}" if box.host_cpus else f"{box.cpus_reserved:g}"
    )
    reserved = format_memory(box.memory_reserved) if box.memory_reserved else "0"
    memory = f"{reserved} of {size(box.host_memory)}" if box.host_memory else reserved
    full = " — FULL: new leases are refused" if box.full else ""
    return f"box: {box.active} of {box.max_total} leases{full} · {cpus} CPUs · {memory} reserved"


class _View(Screen[None]):
    """A screen that reads something every ``REFRESH`` seconds and shows it."""

    BINDINGS: ClassVar[list[BindingType]] = list(VIEW_BACK)
    REFRESH = 5.0

    def __init__(self, service: LeaseService, *, id: str) -> None:
        super().__init__(id=id)
        self.service = service
        self.loaded = asyncio.Event()
        """Set after the first successful read (tests wait on it)."""

    def on_mount(self) -> None:
        self._poll()

    @work(group="view", exclusive=True, exit_on_error=False)
    async def _poll(self) -> None:
        while True:
            try:
                await self.load()
                self.loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.query_one(".view-note", Static).update(
                    Content(one_line(f"cannot read (retrying): {exc}"))
                )
            await asyncio.sleep(self.REFRESH)

    async def load(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def action_new_lease(self) -> None:
        """Back to the main screen, in the provision form."""
        self.dismiss()
        self.app.call_later(self.app.run_action, "new_lease")

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self._poll()


class TeamScreen(_View):
    """Spend per user (everybody for an admin; you and the totals otherwise), your budget, and
    the box's capacity."""

    CSS_PATH = Path(__file__).with_name("views.tcss")
    AUTO_FOCUS = "#team-table"
    REFRESH = TEAM_REFRESH

    def __init__(self, service: LeaseService) -> None:
        super().__init__(service, id="team-screen")
        self.team: TeamSpend | None = None
        self.outlook: Outlook | None = None
        self.capacity: Capacity | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Content.from_markup("[b]Team[/b]  [dim]spend today and this week (UTC)[/]"),
            classes="view-title",
        )
        yield DataTable(id="team-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="team-budget", classes="view-line")
        yield Static(id="team-capacity", classes="view-line")
        yield Static(classes="view-note")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#team-table", DataTable)
        for key, label in (
            ("user", "User"),
            ("active", "Active"),
            ("today", "Today"),
            ("week", "This week"),
            ("rate", "Rate now"),
            ("images", "Images"),
        ):
            table.add_column(label, key=key)
        super().on_mount()

    async def load(self) -> None:
        clock = getattr(self.app, "clock", utcnow)
        now: datetime = clock()
        team = await self.service.spend(now)
        outlook = await self.service.outlook(now)
        box = await self.service.capacity()
        self.show(team, outlook, box)

    def show(self, team: TeamSpend, outlook: Outlook, box: Capacity) -> None:
        self.team, self.outlook, self.capacity = team, outlook, box
        table = self.query_one("#team-table", DataTable)
        table.clear()
        for row in [*team.users, team.total]:
            table.add_row(
                _cell("everybody" if row.user == "*" else row.user),
                _cell(str(row.active)),
                _cell(format_cost(row.today)),
                _cell(format_cost(row.week)),
                _cell(format_rate(row.rate)),
                _cell(", ".join(f"{k} {v}" for k, v in sorted(row.by_image.items())) or "—"),
                key=row.user,
            )
        self.query_one("#team-budget", Static).update(Content(one_line(budget_text(outlook))))
        self.query_one("#team-capacity", Static).update(Content(one_line(capacity_text(box))))
        scope = "every user" if team.everyone else "you (admins see every user)"
        self.query_one(".view-note", Static).update(Content(f"{scope}; updated {team.at:%H:%M:%S}"))


class ReapersScreen(_View):
    """Every live reaper, the claims held now and the next deadlines."""

    CSS_PATH = Path(__file__).with_name("views.tcss")
    AUTO_FOCUS = "#reapers-table"
    REFRESH = REAPERS_REFRESH

    def __init__(self, service: LeaseService) -> None:
        super().__init__(service, id="reapers-screen")
        self.view: ReaperOverview | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Content.from_markup("[b]Reapers[/b]  [dim]who removes leases at their deadline[/]"),
            classes="view-title",
        )
        yield DataTable(id="reapers-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="reapers-claims", classes="view-line")
        yield Static(id="reapers-next", classes="view-list")
        yield Static(classes="view-note")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#reapers-table", DataTable)
        for key, label in (
            ("host", "Host"),
            ("pid", "PID"),
            ("mode", "Mode"),
            ("pass", "Last pass"),
            ("passes", "Passes"),
            ("reaped", "Reaped"),
            ("failed", "Failed"),
        ):
            table.add_column(label, key=key)
        super().on_mount()

    async def load(self) -> None:
        clock = getattr(self.app, "clock", utcnow)
        self.show(await self.service.reaper_overview(clock()))

    def show(self, view: ReaperOverview) -> None:
        self.view = view
        now = view.at
        table = self.query_one("#reapers-table", DataTable)
        table.clear()
        for beat in view.status.beats:
            try:
                last = (
                    f"{time_left((now - datetime.fromisoformat(beat.last_pass)).total_seconds())}"
                    " ago"
                    if beat.last_pass
                    else "no pass yet"
                )
            except ValueError:
                last = "?"
            table.add_row(
                _cell(beat.host),
                _cell(str(beat.pid)),
                _cell(beat.mode),
                _cell(last),
                _cell(str(beat.passes)),
                _cell(str(beat.reaped)),
                _cell(str(beat.failed)),
                key=beat.key,
            )
        alive = view.status.describe(now)
        claims = ", ".join(view.claimed) if view.claimed else "none"
        self.query_one("#reapers-claims", Static).update(
            Content(one_line(f"{alive} · claims held now: {claims}"))
        )
        upcoming = [
            clean(
                f"{lease_id}  in {time_left((at - now).total_seconds())}  ({at:%H:%M:%S} UTC)",
                tabs=False,
            )
            for lease_id, at in view.upcoming
        ]
        self.query_one("#reapers-next", Static).update(
            Content(
                "next deadlines:\n  " + "\n  ".join(upcoming)
                if upcoming
                else "next deadlines: none"
            )
        )
        self.query_one(".view-note", Static).update(Content(f"updated {now:%H:%M:%S} UTC"))
