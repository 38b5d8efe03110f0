"""Issue 18 in the app, over the real LeaseService on the in-memory fakes: the Activity screen
(live, filtered, redacted, the command copied), the Team view's figures against the test's own
arithmetic to the cent, the Reapers view, and the provision form's budget and quota hint
flipping to "does not fit" exactly at the limit."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from textual.widgets import Button, Input, Static

from containerlease_tui.config import LimitSettings
from containerlease_tui.display import format_cost, format_rate
from containerlease_tui.leases import ProvisionRequest
from containerlease_tui.models import EventType, Lease, utcnow
from containerlease_tui.tui.screens import ActivityScreen, HelpScreen, ReapersScreen, TeamScreen

from .fakes import NOW, demo_settings
from .helpers import loaded, make, settle


def _cells(screen: ActivityScreen) -> list[list[str]]:
    table = screen.table
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_activity_shows_the_log_live_filters_redacts_and_copies() -> None:
    app, service, toasts = make()
    service.emit(EventType.CREATED, "k7m2x9qa", "ubuntu for 2h")
    service.emit(EventType.FAILED, "w6t5y2pe", "bob's private reason")  # bob's lease
    async with app.run_test(size=(140, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ActivityScreen))
        screen = app.screen
        assert isinstance(screen, ActivityScreen)
        await settle(pilot, lambda: screen.table.row_count == 2, what="the history")
        rows = _cells(screen)
        assert rows[0][1:5] == ["alice", "k7m2x9qa", "created", "ubuntu for 2h"]
        assert rows[0][5] == "containerlease provision ubuntu --duration 2h"
        assert rows[1][1:5] == ["bob", "w6t5y2pe", "failed", "(redacted)"]  # not alice's to read

        # Live: an action made now arrives at the bottom with its actor and command.
        await service.restart("k7m2x9qa")
        await settle(pilot, lambda: screen.table.row_count == 3, what="the live event")
        assert _cells(screen)[2][1:4] == ["alice", "k7m2x9qa", "restarted"]
        assert screen.table.cursor_row == 2  # the cursor follows the newest
        await pilot.press("c")
        assert app.clipboard == "containerlease restart k7m2x9qa"
        assert ("Copied: containerlease restart k7m2x9qa", "information") in toasts

        # The filter: by user, lease, type or text.
        await pilot.press("slash")
        await pilot.press(*"bob")
        await settle(pilot, lambda: screen.table.row_count == 1)
        await pilot.press("escape")
        await settle(pilot, lambda: screen.table.row_count == 3)
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, ActivityScreen))


def _own_cost(lease: Lease, since: object) -> Decimal:
    """The test's own arithmetic: rate x hours run inside the window, to 1/100 of a cent."""
    end = min(NOW, lease.expires_at)
    if lease.ended_at is not None:
        end = min(end, lease.ended_at)
    begin = max(lease.created_at, since)  # type: ignore[type-var]
    seconds = max(Decimal(0), Decimal(str((end - begin).total_seconds())))
    return (lease.hourly_rate * seconds / Decimal(3600)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP
    )


async def test_team_view_totals_match_the_tests_arithmetic_to_the_cent() -> None:
    app, service, _ = make()
    leases = service.leases
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    monday = midnight - timedelta(days=NOW.weekday())
    mine = [x for x in leases if x.owner == "alice"]
    alice_today = sum((_own_cost(x, midnight) for x in mine), Decimal(0))
    everybody_today = sum((_own_cost(x, midnight) for x in leases), Decimal(0))
    everybody_week = sum((_own_cost(x, monday) for x in leases), Decimal(0))
    assert alice_today == Decimal("0.0320") + Decimal("0.0773") + Decimal("0.0020")
    async with app.run_test(size=(140, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("T")
        await settle(pilot, lambda: isinstance(app.screen, TeamScreen))
        screen = app.screen
        assert isinstance(screen, TeamScreen)
        await settle(pilot, lambda: screen.team is not None, what="the figures")
        team = screen.team
        assert team is not None and not team.everyone  # alice is no admin: herself and totals
        (alice,) = team.users
        assert alice.today == alice_today
        assert team.total.today == everybody_today and team.total.week == everybody_week
        assert alice.rate == Decimal("0.12")  # api-dev and pg-test run now
        assert alice.active == 2 and alice.by_image == {"ubuntu": 1, "postgres": 1}
        table = screen.query_one("#team-table")
        shown = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]
        assert shown[0][:5] == [
            "alice",
            "2",
            format_cost(alice_today),
            format_cost(alice_today),
            format_rate(Decimal("0.12")),
        ]
        assert shown[1][0] == "everybody" and shown[1][2] == format_cost(everybody_today)
        capacity = str(screen.query_one("#team-capacity", Static).render())
        assert "4 of 50 leases" in capacity and "4 of 4 CPUs" in capacity, capacity
        await pilot.press("n")  # from a view: back, into the provision form
        await settle(pilot, lambda: not isinstance(app.screen, TeamScreen))
        await settle(pilot, lambda: app.main.form.has_focus_within, what="the form")


async def test_reapers_view_shows_every_reaper_and_the_next_deadlines() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(140, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("R")
        await settle(pilot, lambda: isinstance(app.screen, ReapersScreen))
        screen = app.screen
        assert isinstance(screen, ReapersScreen)
        await settle(pilot, lambda: screen.view is not None)
        table = screen.query_one("#reapers-table")
        row = [str(c) for c in table.get_row_at(0)]  # type: ignore[attr-defined]
        assert row[:3] == ["devbox", "4242", "headless"]
        claims = str(screen.query_one("#reapers-claims", Static).render())
        assert "reaper alive on devbox" in claims and "claims held now" in claims


async def test_help_and_palette_name_the_views() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(str(w.render()) for w in app.screen.query(".help-keys"))
        for words in ("Activity: who did what", "Team: spend per user", "Reapers: who cleans up"):
            assert words in text, words
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Activity (v)", "Team (T)", "Reapers (R)"} <= set(titles)


def _budget_settings(budget: str | None = "2.5", per_user: int = 100) -> object:
    settings = demo_settings()
    limits = settings.limits.model_dump()
    limits.update(
        daily_budget_hours=Decimal(budget) if budget else None, max_leases_per_user=per_user
    )
    return settings.model_copy(update={"limits": LimitSettings(**limits)})


async def test_the_form_hint_flips_to_does_not_fit_exactly_at_the_budget() -> None:
    app, service, _ = make(utcnow, settings=_budget_settings("2.5"), leases=[])
    await service.submit(ProvisionRequest(image="alpine", duration="30m"))  # books 0.5 h
    async with app.run_test(size=(140, 40)) as pilot:
        form = app.main.form
        await settle(
            pilot,
            lambda: form.outlook is not None and form.outlook.booked_hours == Decimal("0.5"),
            what="the outlook",
        )
        button = form.query_one("#provision", Button)
        duration = form.query_one("#duration", Input)
        budget = form.query_one("#budget", Static)

        duration.value = "2h"  # 0.5 + 2 = 2.5: exactly the budget fits
        await settle(pilot, lambda: "fits" in str(budget.render()) and not button.disabled)
        assert "2 of 2.5 lease-hours left today" in str(budget.render())
        assert "does not fit" not in str(budget.render())

        duration.value = "2h5m"  # one step over: disabled with the reason, before any submit
        await settle(pilot, lambda: button.disabled)
        assert "does not fit" in str(budget.render())
        assert form.error.startswith("does not fit the daily budget: needs 2.08 lease-hours")

        duration.value = "2h"
        await settle(pilot, lambda: not button.disabled)


async def test_the_form_is_disabled_at_the_user_quota_with_the_reason() -> None:
    app, service, _ = make(utcnow, settings=_budget_settings(None, per_user=1), leases=[])
    async with app.run_test(size=(140, 40)) as pilot:
        form = app.main.form
        await settle(pilot, lambda: form.outlook is not None)
        button = form.query_one("#provision", Button)
        assert not button.disabled and "no daily budget" in str(
            form.query_one("#budget", Static).render()
        )
        await service.submit(ProvisionRequest(image="alpine", duration="30m"))
        await settle(pilot, lambda: button.disabled, what="the quota")
        assert form.error == "quota reached: you hold 1 of 1 active leases"
