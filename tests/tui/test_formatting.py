"""The TUI's pure text helpers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from containerlease_tui.tui.formatting import clock_text, money, rate, time_left
from containerlease_tui.tui.widgets.log_pane import clean_line, compile_filter

from .fakes import NOW


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-5, "0 s"),
        (42.9, "42 s"),
        (125, "2 min 5 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (4320 + 59, "1 h 12 min"),
        (86400 + 7200 + 60, "1 d 2 h 1 min"),
    ],
)
def test_time_left_is_short_and_never_rounds_up(seconds: float, text: str) -> None:
    assert time_left(seconds) == text


def test_money_and_rates() -> None:
    assert money(Decimal("0")) == "$0.00"
    assert money(Decimal("0.0020")) == "$0.0020"
    assert money(Decimal("1.234")) == "$1.23"
    assert rate(Decimal("0.040000")) == "$0.04/h"
    assert rate(Decimal("0.1")) == "$0.10/h"
    assert rate(Decimal("2")) == "$2.00/h"
    assert clock_text(NOW) == "12:00:00 UTC"


def test_log_lines_are_cleaned_and_filters_fall_back_to_literal_text() -> None:
    assert clean_line("\x1b[31mred\x1b[0m text\r\n") == "red text"
    assert clean_line("bell\x07 and \x1b]0;title\x07done") == "bell and done"
    pattern = compile_filter("ERROR|warn")
    assert pattern is not None and pattern.search("a Warning")
    literal = compile_filter("[unclosed")
    assert literal is not None and literal.search("x [unclosed y")
    assert compile_filter("") is None
