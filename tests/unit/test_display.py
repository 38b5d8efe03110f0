"""The shared time-left and money formatters (TUI and CLI)."""

from __future__ import annotations

from decimal import Decimal

import humanize
import pytest
from pydantic import ValidationError

from containerlease_tui.config import DisplaySettings, Settings
from containerlease_tui.display import cost_style, expires_in, format_cost, format_rate, time_left


@pytest.mark.parametrize(
    ("seconds", "compact", "long"),
    [
        (0, "0 s", "0 seconds"),
        (-5, "0 s", "0 seconds"),
        (float("nan"), "0 s", "0 seconds"),
        (0.9, "0 s", "0 seconds"),
        (1, "1 s", "1 second"),
        (42.9, "42 s", "42 seconds"),
        (60, "1 min", "1 minute"),
        (61, "1 min 1 s", "1 minute and 1 second"),
        (125, "2 min 5 s", "2 minutes and 5 seconds"),
        (3599.99, "59 min 59 s", "59 minutes and 59 seconds"),
        (3600, "1 h", "1 hour"),
        (3661, "1 h 1 min", "1 hour and 1 minute"),
        (4320 + 59, "1 h 12 min", "1 hour and 12 minutes"),
        (86400 + 7200 + 60, "1 d 2 h 1 min", "1 day, 2 hours and 1 minute"),
        (2 * 86400 + 59, "2 d", "2 days"),
    ],
)
def test_time_left_rounds_down_to_the_unit_it_shows(
    seconds: float, compact: str, long: str
) -> None:
    assert time_left(seconds) == compact
    assert time_left(seconds, long=True) == long


def test_below_an_hour_the_long_form_reads_as_humanize_did() -> None:
    # The CLI printed humanize.precisedelta before; under an hour nothing it shows has changed.
    for seconds in range(3600):
        expected = humanize.precisedelta(seconds, minimum_unit="seconds", format="%0.0f")
        assert time_left(seconds + 0.5, long=True) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.01, "1 s"),
        (1, "1 s"),
        (1.2, "2 s"),
        (42.1, "43 s"),
        (59.0, "59 s"),
        (59.5, "1 min"),
        (60, "1 min"),
        (61, "2 min"),
        (119.99, "2 min"),
        (120, "2 min"),
        (599.5, "10 min"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
        (7200, "2 h"),
    ],
)
def test_expires_in_rounds_up_to_the_warning_point(seconds: float, text: str) -> None:
    assert expires_in(seconds) == text


def test_costs_and_rates_read_in_dollars_by_default() -> None:
    assert format_cost(Decimal("0")) == "$0.00"
    assert format_cost(Decimal("0.0000")) == "$0.00"
    assert format_cost(Decimal("0.0020")) == "$0.0020"
    assert format_cost(Decimal("0.1200")) == "$0.12"
    assert format_cost(Decimal("1.234")) == "$1.23"
    assert format_cost(Decimal("12")) == "$12.00"
    assert format_rate(Decimal("0.040000")) == "$0.04/h"
    assert format_rate(Decimal("0.1")) == "$0.10/h"
    assert format_rate(Decimal("2")) == "$2.00/h"
    assert format_rate(Decimal("0.005")) == "$0.005/h"
    assert format_cost(Decimal("-0.5")) == "-$0.50"


def test_costs_follow_the_display_settings() -> None:
    """`[display]` currency and decimals reach every formatted cost, once set where settings
    load; a sub-unit amount still keeps four decimals so it never reads as zero."""
    settings = Settings(display=DisplaySettings(currency="EUR", decimals=0))
    token = cost_style.set(cost_style.get())  # restore whatever the test started with
    try:
        settings.display.apply()
        assert format_cost(Decimal("12.40")) == "EUR12"
        assert format_cost(Decimal("0.36")) == "EUR0.3600"
        assert format_rate(Decimal("0.36")) == "EUR0.36/h"
        assert format_rate(Decimal("2")) == "EUR2/h"
        DisplaySettings(currency="", decimals=3).apply()
        assert format_cost(Decimal("1.2")) == "1.200"
    finally:
        cost_style.reset(token)
    assert format_cost(Decimal("1")) == "$1.00"


@pytest.mark.parametrize("currency", ["1$", "a b", "\x1b[31m", "EUROS"])
def test_a_currency_that_would_garble_a_cost_is_refused(currency: str) -> None:
    with pytest.raises(ValidationError):
        DisplaySettings(currency=currency)
