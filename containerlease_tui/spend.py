"""What leases cost and what is left, from the records (pure: no I/O, no Textual).

Every figure is a ``Decimal`` from :func:`models.cost_for` over the span a lease ran inside a
window (``[created_at, min(now, deadline, ended_at)]``), so the Team view, ``spend --json`` and
``ls`` agree to the cent: a lease's cost "today" is its ``accrued_cost`` when it started today.
Days and weeks are UTC (the daily budget's days); a week starts on Monday.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from containerlease_tui.models import Lease, cost_for, lease_hours

BUDGET_SLACK: Final = Decimal("0.0001")
"""As the store: lease-hours are booked rounded to 6 places, and "exactly the budget" fits."""
SIX_PLACES: Final = Decimal("0.000001")


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of ``now``'s week."""
    start = day_start(now)
    return start - timedelta(days=start.weekday())


def cost_within(lease: Lease, start: datetime, now: datetime) -> Decimal:
    """What ``lease`` cost between ``start`` and ``now``."""
    end = min(now, lease.expires_at)
    if lease.ended_at is not None:
        end = min(end, lease.ended_at)
    begin = max(start, lease.created_at)
    if end <= begin:
        return Decimal("0.0000")
    return cost_for(lease.hourly_rate, end - begin)


def running_now(lease: Lease, now: datetime) -> bool:
    """Accrues cost now: active and before its deadline."""
    return lease.status.is_active and lease.expires_at > now


@dataclass(frozen=True)
class UserSpend:
    """One user's (or everybody's: ``user`` is ``*``) leases and spend."""

    user: str
    active: int = 0
    today: Decimal = Decimal("0.0000")
    week: Decimal = Decimal("0.0000")
    rate: Decimal = Decimal(0)
    """Cost per hour of what runs now."""
    by_image: dict[str, int] = field(default_factory=dict)
    """Active leases per catalog image."""

    def to_public(self) -> dict[str, object]:
        return {
            "user": self.user,
            "active": self.active,
            "cost_today": str(self.today),
            "cost_week": str(self.week),
            "rate_per_hour": str(self.rate),
            "by_image": [{"image": k, "active": v} for k, v in sorted(self.by_image.items())],
        }


def user_spend(user: str, leases: Iterable[Lease], now: datetime) -> UserSpend:
    """The spend of ``leases`` (already chosen: one user's, or everybody's)."""
    today, week = day_start(now), week_start(now)
    cost_today = cost_week = Decimal("0.0000")
    rate = Decimal(0)
    images: Counter[str] = Counter()
    active = 0
    for lease in leases:
        cost_today += cost_within(lease, today, now)
        cost_week += cost_within(lease, week, now)
        if lease.status.is_active:
            active += 1
            images[lease.image] += 1
        if running_now(lease, now):
            rate += lease.hourly_rate
    return UserSpend(user, active, cost_today, cost_week, rate, dict(images))


@dataclass(frozen=True)
class TeamSpend:
    """The Team view and ``containerlease spend``: per user, and the totals."""

    at: datetime
    users: list[UserSpend]
    total: UserSpend
    everyone: bool
    """Every user is listed (an admin); otherwise only the one asking, with everybody's totals."""

    def to_public(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "everyone": self.everyone,
            "users": [u.to_public() for u in self.users],
            "total": self.total.to_public(),
        }


def team_spend(leases: Iterable[Lease], now: datetime, *, me: str, everyone: bool) -> TeamSpend:
    """Spend per user (all of them for an admin, else ``me`` only) and the totals over all."""
    leases = list(leases)
    owners = sorted({x.owner for x in leases} | {me}) if everyone else [me]
    users = [user_spend(o, (x for x in leases if x.owner == o), now) for o in owners]
    return TeamSpend(now, users, user_spend("*", leases, now), everyone)


def booked_hours(span: timedelta) -> Decimal:
    """The lease-hours a lease of ``span`` books (rounded as the store books them)."""
    return lease_hours(span).quantize(SIX_PLACES)


@dataclass(frozen=True)
class Outlook:
    """Where a user stands before asking for a lease: the provision form's budget line."""

    user: str
    spent_today: Decimal
    booked_hours: Decimal
    """Lease-hours booked today (the daily budget's count: refunds already given back)."""
    budget_hours: Decimal | None
    active_mine: int
    max_per_user: int
    active_total: int
    max_total: int

    @property
    def remaining_hours(self) -> Decimal | None:
        if self.budget_hours is None:
            return None
        return max(Decimal(0), self.budget_hours - self.booked_hours)

    def refusal(self, span: timedelta | None) -> str | None:
        """Why a lease of ``span`` would be refused now (the store's checks), or None: it fits."""
        if self.active_total >= self.max_total:
            return (
                f"the box is full: {self.active_total} of {self.max_total} leases are active; "
                "try again when one ends"
            )
        if self.active_mine >= self.max_per_user:
            return (
                f"quota reached: you hold {self.active_mine} of {self.max_per_user} active leases"
            )
        if span is not None and self.budget_hours is not None:
            needed = booked_hours(span)
            if self.booked_hours + needed > self.budget_hours + BUDGET_SLACK:
                left = self.remaining_hours or Decimal(0)
                return (
                    f"does not fit the daily budget: needs {format_hours(needed)} lease-hours, "
                    f"{format_hours(left)} of {format_hours(self.budget_hours)} left today"
                )
        return None

    def to_public(self) -> dict[str, object]:
        remaining = self.remaining_hours
        return {
            "user": self.user,
            "spent_today": str(self.spent_today),
            "budget_hours": None if self.budget_hours is None else str(self.budget_hours),
            "booked_hours": str(self.booked_hours.quantize(SIX_PLACES)),
            "remaining_hours": None if remaining is None else str(remaining.quantize(SIX_PLACES)),
            "active": self.active_mine,
            "max_per_user": self.max_per_user,
        }


def format_hours(value: Decimal) -> str:
    """Lease-hours for people: ``2``, ``1.5``, ``0.25`` (the app and the CLI alike)."""
    text = f"{value.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Capacity:
    """The box's limits against what active leases reserve."""

    active: int
    max_total: int
    cpus_reserved: float
    memory_reserved: int
    host_cpus: int | None
    """The engine's ``NCPU`` (None: the engine could not be asked)."""
    host_memory: int | None
    """The engine's ``MemTotal`` in bytes."""

    @property
    def full(self) -> bool:
        return self.active >= self.max_total

    def to_public(self) -> dict[str, object]:
        return {
            "active": self.active,
            "max_leases_total": self.max_total,
            "full": self.full,
            "cpus_reserved": round(self.cpus_reserved, 3),
            "memory_reserved": self.memory_reserved,
            "host_cpus": self.host_cpus,
            "host_memory": self.host_memory,
        }


def capacity_of(
    leases: Iterable[Lease], max_total: int, host_cpus: int | None, host_memory: int | None
) -> Capacity:
    active = [x for x in leases if x.status.is_active]
    return Capacity(
        active=len(active),
        max_total=max_total,
        cpus_reserved=sum(x.resources.cpus for x in active),
        memory_reserved=sum(x.resources.memory for x in active),
        host_cpus=host_cpus,
        host_memory=host_memory,
    )
