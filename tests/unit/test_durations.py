"""Humane durations: parsing, formatting, range checks, the pydantic field type."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from containerlease_tui.durations import (
    Duration,
    DurationError,
    check_range,
    format_duration,
    format_duration_seconds,
    parse_duration,
)

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 90 * S),
        ("30m", 30 * M),
        ("2h", 2 * H),
        ("1h30m", 90 * M),
        ("1d", D),
        ("1w", 7 * D),
        ("1h 30m", 90 * M),
        ("1h  30m  15s", 90 * M + 15 * S),
        ("3600", H),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("2H", 2 * H),
        ("1H30M", 90 * M),
        ("1D", D),
        ("  45m  ", 45 * M),
        ("1d2h3m4s", D + 2 * H + 3 * M + 4 * S),
        ("50ms", timedelta(milliseconds=50)),
        ("200MS", timedelta(milliseconds=200)),
        ("1s500ms", timedelta(milliseconds=1500)),
        ("1m 5ms", M + timedelta(milliseconds=5)),
    ],
)
def test_parse_good(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(90, 90 * S), (1.5, timedelta(seconds=1.5)), (0, timedelta(0)), (H, H)],
)
def test_parse_numbers_and_timedeltas(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "1x",
        "-5m",
        "1.5h",
        "h",
        "m5",
        "1h30",
        "1h-30m",
        "+5m",
        "1e3",
        "0x10",
        "10000d",  # more than ten years
    ],
)
def test_parse_bad(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, [1], -1, -0.5, timedelta(seconds=-1)])
def test_parse_bad_types_and_negatives(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)  # type: ignore[arg-type]


def test_errors_are_value_errors_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 90s, 30m, 2h or 1h30m"):
        parse_duration("soon")
    with pytest.raises(DurationError, match="positive"):
        parse_duration("-5m")
    with pytest.raises(DurationError, match="at most 10 years"):
        parse_duration("10000d")


def test_error_message_truncates_long_input() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration("x" * 10_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "text",
    ["9" * 13, "9" * 60 + "d", "9" * 400, "9" * 400 + "d", "9" * 5000, "999999999999w"],
    ids=["13-digits", "60-digit-days", "400-digits", "400-digit-days", "5000", "many-weeks"],
)
def test_absurdly_large_numbers_are_duration_errors(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_non_finite_and_huge_floats(value: float) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)


def test_ten_years_is_the_limit() -> None:
    assert parse_duration("3650d") == 3650 * D
    with pytest.raises(DurationError, match="at most 10 years"):
        parse_duration("3651d")


@pytest.mark.parametrize(
    "text",
    ["²", "¹h", "\u0661\u0662", "\u0661h", "\u0663\u0660m", "\uff11\uff48", "5m\x00", "5m\n5s!"],
)
def test_only_ascii_digits_and_units(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_absurdly_long_input_is_rejected_quickly() -> None:
    # Inputs that made a backtracking regex explode; in a subprocess, so a regression cannot hang
    # the test run. The second one is short enough to reach the parser proper.
    code = (
        "from containerlease_tui.durations import parse_duration, DurationError\n"
        "for text in ['1s  ' * 40 + '!', '1s  ' * 15 + '!', '1s \\t' * 15 + 'x']:\n"
        "    try:\n"
        "        parse_duration(text)\n"
        "    except DurationError:\n"
        "        print('rejected')\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=10
        ).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("parse_duration did not finish within 10s")
    assert out.split() == ["rejected"] * 3


def test_long_but_valid_input() -> None:
    assert parse_duration("1s " * 20) == 20 * S


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (90 * S, "1m30s"),
        (30 * M, "30m"),
        (2 * H, "2h"),
        (90 * M, "1h30m"),
        (D, "1d"),
        (7 * D, "7d"),
        (D + H + M + S, "1d1h1m1s"),
        (H + S, "1h1s"),
    ],
)
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert format_duration_seconds(value.total_seconds()) == text


def test_format_rounds_to_whole_seconds() -> None:
    assert format_duration_seconds(89.6) == "1m30s"
    assert format_duration_seconds(60.2) == "1m"


@pytest.mark.parametrize("ms", [1, 50, 200, 999])
def test_sub_second_durations_round_trip_as_milliseconds(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert format_duration(value) == f"{ms}ms"
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    "text", ["90s", "30m", "2h", "1h30m", "1d", "1d1h1m1s", "8h", "24h", "1h 30m", "3600", "1w"]
)
def test_round_trip_from_text(text: str) -> None:
    value = parse_duration(text)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 61, 3599, 3600, 5400, 86399, 86400, 987654])
def test_round_trip_from_seconds(seconds: int) -> None:
    text = format_duration_seconds(seconds)
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(parse_duration(text)) == text


def test_check_range_accepts_bounds_and_inside() -> None:
    for value in (S, 30 * M, 8 * H):
        check_range(value, S, 8 * H)


@pytest.mark.parametrize("value", [9 * H, 8 * H + S, D])
def test_check_range_too_long_names_range(value: timedelta) -> None:
    with pytest.raises(DurationError) as info:
        check_range(value, S, 8 * H)
    message = str(info.value)
    assert "allowed 1s to 8h" in message
    assert format_duration(value) in message
    assert "out of range" in message


def test_check_range_too_short_names_range() -> None:
    with pytest.raises(DurationError, match="allowed 5m to 8h"):
        check_range(M, 5 * M, 8 * H, what="lease")


@pytest.mark.parametrize("value", [timedelta(0), -S])
def test_check_range_zero_and_negative(value: timedelta) -> None:
    with pytest.raises(DurationError) as info:
        check_range(value, S, 8 * H, what="extension")
    assert str(info.value) == "extension must be positive (allowed 1s to 8h)"


def test_check_range_uses_what() -> None:
    with pytest.raises(DurationError, match=r"^extension 9h is out of range: allowed 1m to 8h$"):
        check_range(9 * H, M, 8 * H, what="extension")


class _Model(BaseModel):
    d: Duration


def test_pydantic_field_parses_and_serialises() -> None:
    model = _Model(d="1h30m")  # type: ignore[arg-type]
    assert model.d == 90 * M
    assert model.model_dump_json() == '{"d":"1h30m"}'
    assert model.model_dump()["d"] == 90 * M  # python mode keeps the timedelta
    assert _Model.model_validate_json(model.model_dump_json()) == model
    assert _Model(d=90).d == 90 * S  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "-5m", True])
def test_pydantic_field_rejects(bad: object) -> None:
    with pytest.raises(ValidationError):
        _Model(d=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1500ms", "2500ms", "1m30s250ms"])
def test_pydantic_field_serialises_milliseconds_exactly(text: str) -> None:
    model = _Model(d=text)  # type: ignore[arg-type]
    assert _Model.model_validate_json(model.model_dump_json()) == model
