"""Humane durations: ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` — parsed, formatted and bounded."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

# Milliseconds per unit: integer arithmetic, so huge inputs cannot overflow a float.
_UNITS_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
# One token at a time, anchored where the previous one ended: linear, no backtracking blow-up.
_TOKEN = re.compile(r"([0-9]{1,12})[ \t]*(ms|[wdhms])[ \t]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,12}", re.ASCII)
_MAX_SECONDS = 10 * 365 * 86400
_MAX_TEXT = 64
_HINT = "use e.g. 90s, 30m, 2h or 1h30m"


class DurationError(ValueError):
    """A duration string that cannot be parsed, or one outside the allowed range."""


def _parse_text(text: str) -> float:
    raw = text.strip().lower()
    if not raw:
        raise DurationError(f"empty duration: {_HINT}")
    if raw.startswith("-"):
        raise DurationError(f"negative duration {text.strip()[:20]!r}: durations must be positive")
    if len(raw) > _MAX_TEXT:
        raise DurationError(f"duration too long to be real: {_HINT}")
    if _DIGITS.fullmatch(raw):
        return float(int(raw))
    total_ms, pos = 0, 0
    while pos < len(raw):
        match = _TOKEN.match(raw, pos)
        if match is None:
            raise DurationError(f"cannot parse duration {text.strip()[:40]!r}: {_HINT}")
        total_ms += int(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if total_ms > _MAX_SECONDS * 1000:
        raise DurationError("duration too long: at most 10 years")
    return total_ms / 1000


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``1h30m``-style text (or plain seconds) into a non-negative timedelta."""
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, bool):
        raise DurationError(f"not a duration: {text!r}")
    elif isinstance(text, int | float):
        seconds = float(text)
    elif isinstance(text, str):
        seconds = _parse_text(text)
    else:
        raise DurationError(f"not a duration: {text!r}")
    if seconds != seconds:  # NaN
        raise DurationError("not a duration: NaN")
    if seconds < 0:
        raise DurationError(f"negative duration {format_duration_seconds(-seconds)}")
    if seconds > _MAX_SECONDS:
        raise DurationError("duration too long: at most 10 years")
    return timedelta(seconds=seconds)


def format_duration_seconds(seconds: float) -> str:
    """Compact form, the inverse of :func:`parse_duration` (``5400`` → ``1h30m``)."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    if total == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def format_duration_exact(value: timedelta) -> str:
    """Lossless form for serialising settings (``1500ms`` stays ``1s500ms``)."""
    total_ms = round(value.total_seconds() * 1000)
    secs, ms = divmod(total_ms, 1000)
    text = format_duration_seconds(secs) if secs else ""
    return text + (f"{ms}ms" if ms else "") or "0s"


def format_duration(value: timedelta) -> str:
    """Compact form of a timedelta (``timedelta(minutes=90)`` → ``1h30m``)."""
    return format_duration_seconds(value.total_seconds())


def _precise(value: timedelta) -> str:
    """Exact to the microsecond: a message about a limit must not round (``2h1ms``, not ``2h``)."""
    if value.microseconds % 1000:
        seconds = f"{value.total_seconds():.6f}".rstrip("0")
        return f"{seconds}s"
    return format_duration_exact(value)


def check_range(value: timedelta, low: timedelta, high: timedelta, what: str = "duration") -> None:
    """Raise a :class:`DurationError` naming the allowed range when ``value`` is outside it.

    Every value in the message is exact: ``7200001ms`` against an 8h limit reads ``2h1ms``.
    """
    if value <= timedelta(0):
        raise DurationError(
            f"{what} must be positive (allowed {_precise(low)} to {_precise(high)})"
        )
    if not low <= value <= high:
        raise DurationError(
            f"{what} {_precise(value)} is out of range: allowed {_precise(low)} to {_precise(high)}"
        )


def _validate(value: object) -> timedelta:
    try:
        return parse_duration(value)  # type: ignore[arg-type]
    except DurationError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration_exact, return_type=str, when_used="json"),
]
"""A pydantic field type that accepts humane strings and serialises back to them."""
