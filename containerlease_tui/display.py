"""How time left and money read, the same in the TUI and the CLI (pure: no I/O, no Textual).

The one rounding rule: :func:`time_left` rounds *down* to the smallest unit it shows, so a
countdown never shows more time than is left. Whole seconds below an hour, whole minutes from
an hour on (a countdown in hours has no use for seconds). A caller announcing a deadline passes
the span it means: :func:`expires_in` (the reaper's warnings) first rounds up to the warning
point the lease just crossed, and says that point.

``durations.format_duration`` is a different thing: the length of a lease or an extension in
the compact form people type (``1h30m``), and parses back.
"""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["expires_in", "format_cost", "format_rate", "time_left"]

_UNITS: tuple[tuple[int, str, str], ...] = (
    (86400, "d", "day"),
    (3600, "h", "hour"),
    (60, "min", "minute"),
    (1, "s", "second"),
)
_HOUR = 3600
_MINUTE = 60
_CENT = Decimal("0.01")


def _words(parts: list[tuple[int, str]], long: bool) -> str:
    """``1 h 12 min`` or, long, ``1 hour and 12 minutes`` (humanize's wording, kept by the CLI)."""
    if not long:
        return " ".join(f"{n} {unit}" for n, unit in parts)
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} and {words[-1]}"


def time_left(seconds: float, *, long: bool = False) -> str:
    """A span a person reads at a glance: ``1 h 12 min``, ``4 min 5 s``, ``42 s``, ``0 s``.

    Rounded down (see the module docstring): whole seconds below an hour, whole minutes from
    an hour on. ``long``: the words the CLI prints (``1 hour and 12 minutes``).
    """
    total = int(max(0.0, seconds)) if seconds == seconds else 0  # NaN: nothing left
    if total >= _HOUR:
        total -= total % _MINUTE
    parts: list[tuple[int, str]] = []
    for size, short, word in _UNITS:
        count, total = divmod(total, size)
        if count:
            parts.append((count, word if long else short))
    if not parts:
        parts = [(0, "second" if long else "s")]
    return _words(parts, long)


def expires_in(seconds: float) -> str:
    """``expires in …`` wording for a warning: rounded *up* to the unit it names.

    A warning goes out a moment after the lease crosses a warning point ("2 minutes before the
    deadline"), so rounding up names that point: 119.9 → ``2 min``, 42.1 → ``43 s``,
    5400 → ``1 h 30 min``; never less than ``1 s``.
    """
    whole = max(1, math.ceil(seconds - 1e-6))
    if whole >= _MINUTE:
        whole = math.ceil(seconds / _MINUTE - 1e-9) * _MINUTE
    return time_left(whole)


def format_cost(value: Decimal) -> str:
    """Money with cents; sub-cent amounts keep four decimals so they do not read as zero."""
    if value == 0:
        return "0.00"
    if abs(value) < _CENT:
        return f"{value:.4f}"
    return f"{value:.2f}"


def format_rate(value: Decimal) -> str:
    """An hourly rate as configured, without trailing zeros beyond the cents: ``0.36/h``."""
    text = f"{value.normalize():f}"
    if "." not in text:
        text += ".00"
    elif len(text.split(".", 1)[1]) == 1:
        text += "0"
    return f"{text}/h"
