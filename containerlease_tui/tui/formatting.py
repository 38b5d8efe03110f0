"""Pure helpers that turn leases, money and time into short text for the TUI (no Textual here)."""

from __future__ import annotations

from datetime import datetime

from containerlease_tui.display import format_cost, format_rate, time_left
from containerlease_tui.models import Lease
from containerlease_tui.sanitize import clean

__all__ = [
    "clock_text",
    "cost_cell",
    "lease_label",
    "money",
    "rate",
    "size",
    "time_left",
    "time_left_cell",
]

money = format_cost
"""Costs with cents (:func:`containerlease_tui.display.format_cost`, shared with the CLI)."""
rate = format_rate
"""An hourly rate: ``0.36/h`` (:func:`containerlease_tui.display.format_rate`)."""


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
    return f"{format_cost(lease.accrued_cost(now))}/{format_cost(lease.estimated_cost)}"


def clock_text(now: datetime) -> str:
    """The status bar clock, in UTC so every user of a shared box reads the same time."""
    return now.strftime("%H:%M:%S UTC")


def size(value: int) -> str:
    """Bytes as ``12.3 MiB``."""
    import humanize  # only for sizes: not worth its import time at start-up

    return humanize.naturalsize(value, binary=True)
