"""Ask how long to extend a lease by, validated against the limits before it is sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from containerlease_tui.config import LimitSettings
from containerlease_tui.durations import format_duration
from containerlease_tui.leases import InvalidInput, bounded_duration, plan_extension
from containerlease_tui.models import Lease, cost_for
from containerlease_tui.sanitize import one_line
from containerlease_tui.tui.formatting import lease_label, money, time_left

PRESETS = ("15m", "30m", "1h", "2h")


def check_extension(
    lease: Lease, text: str, limits: LimitSettings, now: datetime
) -> tuple[timedelta, datetime]:
    """The amount and the new deadline, by the service's own rules (:class:`InvalidInput`)."""
    amount = bounded_duration(text, limits, "extension")
    return amount, plan_extension(lease, amount, limits, now)


class ExtendScreen(ModalScreen[str | None]):
    """Dismisses with the duration to extend by (as typed), or None when cancelled."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, lease: Lease, limits: LimitSettings, now: datetime) -> None:
        super().__init__()
        self.lease = lease
        self.limits = limits
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content.from_markup("[b]Extend[/b] $lease", lease=lease_label(self.lease)),
                id="dialog-title",
            )
            yield Static(
                Content(
                    f"{time_left(self.lease.seconds_left(self.now))} left; "
                    f"allowed {format_duration(self.limits.min_duration)} to "
                    f"{format_duration(self.limits.max_duration)} at a time, "
                    f"{format_duration(self.limits.max_lifetime)} in total"
                ),
                id="extend-hint",
            )
            yield Input(
                id="extend-by",
                placeholder=format_duration(self.limits.default_duration),
                compact=True,
            )
            with Horizontal(id="extend-presets"):
                for preset in PRESETS:
                    yield Button(preset, classes="preset", compact=True)
            yield Static(id="extend-result")
            with Horizontal(id="buttons"):
                yield Button("Extend (enter)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#extend-by", Input).focus()
        self._validate()

    def _validate(self) -> bool:
        text = self.query_one("#extend-by", Input).value
        result = self.query_one("#extend-result", Static)
        try:
            amount, new_expiry = check_extension(self.lease, text, self.limits, self.now)
        except InvalidInput as exc:
            result.update(Content(one_line(str(exc))))
            result.add_class("-error")
            self.query_one("#ok", Button).disabled = True
            return False
        result.remove_class("-error")
        result.update(
            Content(
                f"+{format_duration(amount)} → expires {new_expiry:%H:%M:%S} UTC "
                f"(in {time_left((new_expiry - self.now).total_seconds())}); "
                f"adds {money(cost_for(self.lease.hourly_rate, amount))}, "
                f"{money(cost_for(self.lease.hourly_rate, new_expiry - self.lease.created_at))}"
                " in all"
            )
        )
        self.query_one("#ok", Button).disabled = False
        return True

    @on(Input.Changed)
    def _changed(self) -> None:
        self._validate()

    @on(Button.Pressed, ".preset")
    def _preset(self, event: Button.Pressed) -> None:
        self.query_one("#extend-by", Input).value = str(event.button.label)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        if self._validate():
            text = self.query_one("#extend-by", Input).value.strip()
            self.dismiss(text or format_duration(self.limits.default_duration))
        else:
            self.app.bell()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
