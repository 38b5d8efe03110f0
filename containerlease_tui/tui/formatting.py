"""Pure helpers that turn leases, money and time into short text for the TUI (no Textual here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import humanize

from containerlease_tui.models import Lease
from containerlease_tui.sanitize import clean

_UNITS = (
    (" days", " d"),
    (" day", " d"),
    (" hours", " h"),
    (" hour", " h"),
    (" minutes", " min"),
    (" minute", " min"),
    (" seconds", " s"),
    (" second", " s"),
)


def time_left(seconds: float) -> str:
    """A countdown a person reads at a glance: ``1 h 12 min``, ``4 min 5 s``, ``42 s``.

    Whole minutes above an hour, whole seconds below; always rounded down, so it never
    shows more time than is left.
    """
    total = int(max(0.0, seconds))
    if total <= 0:
        return "0 s"
    if total >= 3600:
        text = humanize.precisedelta(
            timedelta(minutes=total // 60), minimum_unit="minutes", format="%d"
        )
    else:
        text = humanize.precisedelta(timedelta(seconds=total), minimum_unit="seconds", format="%d")
    text = text.replace(" and ", " ").replace(",", "")
    for long, short in _UNITS:
        text = text.replace(long, short)
    return text


def money(value: Decimal) -> str:
    """Costs with cents; sub-cent amounts keep four decimals so they do not read as zero."""
    if value == 0:
        return "0.00"
    if abs(value) < Decimal("0.01"):
        return f"{value:.4f}"
    return f"{value:.2f}"


def rate(value: Decimal) -> str:
    """An hourly rate as configured, without trailing zeros: ``0.36/h``."""
    text = f"{value.normalize():f}"
    if "." not in text:
        text += ".00"
    elif len(text.split(".", 1)[1]) == 1:
        text += "0"
    return f"{text}/h"


def lease_label(lease: Lease) -> str:
    """``name (id)``: the name people use and the id commands accept (controls made visible)."""
    return clean(f"{lease.name} ({lease.id})", tabs=False)


def time_left_cell(lease: Lease, now: datetime) -> str:
    """The countdown column: a duration for live leases, a dash for closed ones."""
    if not lease.status.is_active:
        return "—"
    return time_left(lease.seconds_left(now))


def cost_cell(lease: Lease, now: datetime) -> str:
    """``accrued / estimated`` cost of a lease."""
    return f"{money(lease.accrued_cost(now))}/{money(lease.estimated_cost)}"


def clock_text(now: datetime) -> str:
    """The status bar clock, in UTC so every user of a shared box reads the same time."""
    return now.strftime("%H:%M:%S UTC")


def size(value: int) -> str:
    """Bytes as ``12.3 MiB``."""
    return humanize.naturalsize(value, binary=True)
