"""The pure rules of issue 18: event filters, redaction, equivalent commands; spend windows,
the budget verdict exactly at the limit, capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from containerlease_tui.activity import (
    REDACTED,
    EventFilter,
    cli_equivalent,
    parse_types,
    visible,
)
from containerlease_tui.models import EventType, Lease, LeaseEvent, LeaseStatus, Resources
from containerlease_tui.spend import (
    Outlook,
    capacity_of,
    cost_within,
    day_start,
    format_hours,
    team_spend,
    week_start,
)

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)  # a Friday


def _event(type: EventType, detail: str = "", owner: str = "alice", actor: str = "") -> LeaseEvent:
    return LeaseEvent(
        type=type, lease="k7m2x9qa", owner=owner, actor=actor or owner, at=NOW, detail=detail
    )


def test_filters_match_lease_user_type_and_time() -> None:
    made = _event(EventType.CREATED, "ubuntu for 2h")
    by_admin = _event(EventType.EXTENDED, "by 1h", actor="root")
    assert EventFilter(user="root").select([made, by_admin]) == [by_admin]
    assert EventFilter(user="alice").select([made, by_admin]) == [made, by_admin]  # her lease
    assert EventFilter(lease="other").select([made]) == []
    assert EventFilter(types=frozenset({EventType.CREATED})).select([made, by_admin]) == [made]
    assert EventFilter(since=NOW + timedelta(seconds=1)).select([made]) == []


def test_parse_types() -> None:
    assert parse_types(["created,extended", " released "]) == {
        EventType.CREATED,
        EventType.EXTENDED,
        EventType.RELEASED,
    }
    with pytest.raises(ValueError, match="unknown event type 'nope': use created"):
        parse_types(["nope"])


def test_details_of_another_users_event_are_redacted_for_non_admins() -> None:
    theirs = _event(EventType.FAILED, "a private reason", owner="bob")
    assert visible(theirs, "alice", admin=False).detail == REDACTED
    assert visible(theirs, "alice", admin=True).detail == "a private reason"
    assert visible(theirs, "bob", admin=False).detail == "a private reason"
    assert cli_equivalent(visible(theirs, "alice", admin=False)) is None


def test_equivalent_commands_are_quoted() -> None:
    assert cli_equivalent(_event(EventType.CREATED, "ubuntu for 1h30m")) == (
        "containerlease provision ubuntu --duration 1h30m"
    )
    assert cli_equivalent(_event(EventType.EXTENDED, "by 30m")) == (
        "containerlease extend k7m2x9qa --by 30m"
    )
    assert cli_equivalent(_event(EventType.CREATED, "x; rm -rf / for 1h")) == (
        "containerlease provision 'x; rm -rf /' --duration 1h"
    )
    assert cli_equivalent(_event(EventType.RELEASED, "by alice")) == "containerlease rm k7m2x9qa"
    assert cli_equivalent(_event(EventType.REAPED)) is None


def _lease(owner: str, start: datetime, hours: float, rate: str, **kw: object) -> Lease:
    return Lease(
        name="x",
        owner=owner,
        image="ubuntu",
        image_ref="ubuntu:24.04",
        created_at=start,
        expires_at=start + timedelta(hours=hours),
        hourly_rate=Decimal(rate),
        **kw,  # type: ignore[arg-type]
    )


def test_windows_are_utc_days_and_monday_weeks() -> None:
    assert day_start(NOW) == datetime(2025, 3, 14, tzinfo=UTC)
    assert week_start(NOW) == datetime(2025, 3, 10, tzinfo=UTC)
    overnight = _lease("alice", NOW - timedelta(hours=14), 20, "0.36")  # from 22:00 yesterday
    assert cost_within(overnight, day_start(NOW), NOW) == Decimal("4.3200")  # 12 h today
    assert cost_within(overnight, week_start(NOW), NOW) == Decimal("5.0400")  # all 14 h
    ended = _lease(
        "alice",
        NOW - timedelta(hours=2),
        8,
        "1",
        ended_at=NOW - timedelta(hours=1),
        status=LeaseStatus.RELEASED,
    )
    assert cost_within(ended, day_start(NOW), NOW) == Decimal("1.0000")


def test_team_spend_lists_everybody_only_for_admins() -> None:
    leases = [
        _lease("alice", NOW - timedelta(hours=1), 2, "0.10", status=LeaseStatus.RUNNING),
        _lease("bob", NOW - timedelta(hours=1), 2, "0.20", status=LeaseStatus.RUNNING),
    ]
    mine = team_spend(leases, NOW, me="alice", everyone=False)
    assert [u.user for u in mine.users] == ["alice"] and mine.total.today == Decimal("0.3000")
    assert mine.total.rate == Decimal("0.30") and mine.users[0].by_image == {"ubuntu": 1}
    everyone = team_spend(leases, NOW, me="root", everyone=True)
    assert [u.user for u in everyone.users] == ["alice", "bob", "root"]


def _outlook(**kw: object) -> Outlook:
    values: dict[str, object] = dict(
        user="alice",
        spent_today=Decimal(0),
        booked_hours=Decimal("0.5"),
        budget_hours=Decimal("2.5"),
        active_mine=1,
        max_per_user=3,
        active_total=4,
        max_total=10,
    )
    values.update(kw)
    return Outlook(**values)  # type: ignore[arg-type]


def test_the_budget_verdict_flips_exactly_at_the_limit() -> None:
    outlook = _outlook()
    assert outlook.refusal(timedelta(hours=2)) is None  # 0.5 + 2 = 2.5: fits
    assert outlook.refusal(timedelta(hours=2, seconds=1)) == (
        "does not fit the daily budget: needs 2 lease-hours, 2 of 2.5 left today"
    )
    assert _outlook(budget_hours=None).refusal(timedelta(days=1)) is None
    assert _outlook(active_mine=3).refusal(None) == "quota reached: you hold 3 of 3 active leases"
    assert _outlook(active_total=10).refusal(None) == (
        "the box is full: 10 of 10 leases are active; try again when one ends"
    )
    assert format_hours(Decimal("2.0833")) == "2.08" and format_hours(Decimal(0)) == "0"


def test_capacity_sums_the_active_leases() -> None:
    leases = [
        _lease(
            "a",
            NOW,
            1,
            "0",
            status=LeaseStatus.RUNNING,
            resources=Resources(cpus=1.5, memory=1024**3),
        ),
        _lease("b", NOW, 1, "0", status=LeaseStatus.RELEASED),
    ]
    box = capacity_of(leases, 1, 8, 16 * 1024**3)
    assert (box.active, box.full, box.cpus_reserved, box.memory_reserved) == (1, True, 1.5, 1024**3)
    assert capacity_of([], 1, None, None).to_public()["host_cpus"] is None
