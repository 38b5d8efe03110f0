"""How time left, money and published ports read, the same in the TUI and the CLI (pure: no
I/O, no Textual).

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
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from containerlease_tui.sanitize import one_line

__all__ = [
    "CostStyle",
    "cost_style",
    "expires_in",
    "first_published",
    "format_cost",
    "format_ports",
    "format_rate",
    "ssh_forward",
    "time_left",
]

_UNITS: tuple[tuple[int, str, str], ...] = (
    (86400, "d", "day"),
    (3600, "h", "hour"),
    (60, "min", "minute"),
    (1, "s", "second"),
)
_HOUR = 3600
_MINUTE = 60


@dataclass(frozen=True)
class CostStyle:
    """How money reads: the ``[display]`` settings (``currency``, ``decimals``)."""

    currency: str = "$"
    decimals: int = 2


# Set once from the settings by whoever loaded them (``load_settings``, the app); a ContextVar
# rather than a parameter so every formatter call site stays one obvious call.
DEFAULT_STYLE: Final = CostStyle()
cost_style: ContextVar[CostStyle] = ContextVar("cost_style", default=DEFAULT_STYLE)


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
    """Money as configured (``$0.12``); an amount too small for that many decimals keeps four,
    so it does not read as zero."""
    style = cost_style.get()
    places = style.decimals
    if value != 0 and abs(value) < Decimal(1).scaleb(-places):
        places = max(places, 4)
    sign = "-" if value < 0 else ""
    return f"{sign}{style.currency}{abs(value):.{places}f}"


def format_rate(value: Decimal) -> str:
    """An hourly rate as configured, kept to its own precision but at least the configured
    decimals: ``$0.36/h``, ``$0.015/h``."""
    style = cost_style.get()
    text = f"{value.normalize():f}"
    whole, _, frac = text.partition(".")
    frac = frac.ljust(style.decimals, "0")
    return f"{style.currency}{whole}{'.' if frac else ''}{frac}/h"


# --- published ports ------------------------------------------------------------------------

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", re.ASCII)
SSH_HOST_PLACEHOLDER = "HOST"
"""What the ``ssh -L`` line names when the lease's host is unknown or not a plain host name."""
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}
"""A port published on every address is reached on the box through its loopback."""


def _published(ports: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """(container port, ``address:port``) of each published port, in the record's order; both
    made one safe line (the model validates them, but they come from Redis)."""
    return [(one_line(port, 40), one_line(where, 60)) for port, where in ports.items() if where]


def format_ports(ports: Mapping[str, str | None]) -> str | None:
    """``8080/tcp → 127.0.0.1:49153, 53/udp → 127.0.0.1:32768``; None when none is published."""
    shown = [f"{port} → {where}" for port, where in _published(ports)]
    return ", ".join(shown) or None


def first_published(ports: Mapping[str, str | None]) -> tuple[str, str] | None:
    """(container port, ``address:port``) of the first published port (None: none is)."""
    published = _published(ports)
    return published[0] if published else None


def ssh_forward(ports: Mapping[str, str | None], host: str | None) -> str | None:
    """``ssh -L 49153:127.0.0.1:49153 devbox``: what a user on another machine runs to reach
    the published TCP ports (ssh forwards no UDP) as ``localhost:49153``; None when there are
    none. A host that is not a plain host name reads :data:`SSH_HOST_PLACEHOLDER`, so nothing
    odd from a record ends up in a command someone pastes."""
    forwards = []
    for port, where in _published(ports):
        address, _, number = where.rpartition(":")
        if not port.endswith("/tcp") or not address or not number.isdigit():
            continue
        address = _WILDCARDS.get(address, address)
        forwards.append(f"-L {number}:{address}:{number}")
    if not forwards:
        return None
    target = host if host and _HOSTNAME.fullmatch(host) else SSH_HOST_PLACEHOLDER
    return f"ssh {' '.join(forwards)} {target}"
