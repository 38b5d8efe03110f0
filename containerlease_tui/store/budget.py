"""The daily budget: lease-hours per owner per UTC day (``Keys.budget``).

The insert books a new lease's hours inside its script (:func:`insert_booking` names the day and
the key's expiry). A later :class:`Charge` books more hours (an extension) or gives unused ones
back (a failure, an early release) in the update's own transaction: :func:`settle` reads the
day's total under WATCH and decides the amount, :func:`book` queues the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from containerlease_tui.models import Lease, lease_hours, utcnow
from containerlease_tui.store.codec import optional_text, ts
from containerlease_tui.store.errors import QuotaExceeded
from containerlease_tui.store.keys import Keys

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

BUDGET_SLACK: Final = Decimal("0.0001")
"""Lease-hours are stored rounded to 6 places; this keeps "exactly the budget" allowed."""

CHARGE_TTL_SECONDS: Final = 3 * 86400
"""How long a day's total outlives a charge or refund (it is only ever read for today or for
the day a lease was booked)."""


@dataclass(frozen=True)
class Charge:
    """Lease-hours booked against (``hours`` > 0) or given back to (``hours`` < 0) an owner's
    daily budget by an update. ``limit`` is the budget a booking must stay within."""

    owner: str
    hours: Decimal
    limit: Decimal | None = None
    day: datetime | None = None
    """The UTC day whose budget it books or refunds; None: today. A refund names the day the
    hours were booked (the lease's ``created_at``), so one that crosses midnight gives them back
    where they were taken, not to a new day."""


@dataclass(frozen=True)
class InsertBooking:
    """What the insert script books: ``hours`` (6 places) on ``key``, kept until ``expire_at``."""

    key: str
    hours: str
    expire_at: int


def insert_booking(keys: Keys, lease: Lease) -> InsertBooking:
    """The booking of a new lease. It lands on the lease's own day (its ``created_at``, a
    moment before now), so a refund can find the same day again: :attr:`Charge.day`."""
    booked = lease.created_at
    day_end = datetime(booked.year, booked.month, booked.day, tzinfo=UTC) + timedelta(days=2)
    return InsertBooking(
        key=keys.budget(lease.owner, booked),
        hours=f"{lease_hours(lease.lifetime):.6f}",
        expire_at=int(ts(day_end)),
    )


def charge_key(keys: Keys, charge: Charge) -> str:
    return keys.budget(charge.owner, charge.day or utcnow())


async def settle(pipe: Pipeline, key: str, charge: Charge) -> Decimal:
    """The hours ``charge`` really books on ``key`` (watched by ``pipe``): a refund gives back
    at most what was used (never below zero); a booking over the limit raises
    :class:`QuotaExceeded` and nothing is written."""
    used = Decimal(optional_text(await pipe.get(key)) or "0")
    hours = charge.hours
    if hours < 0:
        return -min(-hours, used)
    if charge.limit is not None and used + hours > charge.limit + BUDGET_SLACK:
        raise QuotaExceeded(
            f"daily budget reached: {charge.owner} may book "
            f"{charge.limit} lease-hours per day ({used:.2f} used)"
        )
    return hours


def book(pipe: Pipeline, key: str, hours: Decimal) -> None:
    """Queue the write of a settled charge (nothing for zero hours)."""
    if hours:
        pipe.incrbyfloat(key, float(hours))
        pipe.expire(key, CHARGE_TTL_SECONDS)
