"""The provision form: image, duration, name, CPUs and memory, a live cost estimate, validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.reactive import Reactive, reactive
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from containerlease_tui.config import ImageSpec, Settings
from containerlease_tui.display import format_cost, format_rate
from containerlease_tui.durations import format_duration
from containerlease_tui.errors import InvalidInput
from containerlease_tui.models import Lease, LeaseStatus, format_memory
from containerlease_tui.policy import LeasePolicy, ProvisionRequest
from containerlease_tui.sanitize import one_line
from containerlease_tui.spend import format_hours
from containerlease_tui.tui.formatting import size
from containerlease_tui.tui.keys import FORM_KEYS
from containerlease_tui.tui.widgets.inputs import FormInput

if TYPE_CHECKING:
    from containerlease_tui.leases import ImageRow, PullProgress
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService
    from containerlease_tui.spend import Outlook

PRESETS = ("30m", "1h", "2h", "4h")
FIELDS = ("duration", "name", "cpus", "memory")
"""The inputs an :class:`InvalidInput` may point at (by its ``field``)."""
HINTED = ("duration", "cpus", "memory")
"""The inputs with an "allowed … to …" line under them."""
_SELECT_VALUE = cast("Reactive[object]", Select.__dict__["value"])
"""``Select.value``, the descriptor (mypy cannot type a class attribute of a generic class)."""
_PRESENCE = {
    True: "[$success]local[/]",
    False: "[$warning]will pull[/]",
    None: "[dim]?[/]",
}
"""Whether the engine has an image: present, absent (provisioning pulls it), unknown."""


@dataclass(frozen=True)
class FormRequest:
    """What the form holds, as typed (empty strings: use the image's defaults)."""

    image: str
    duration: str
    name: str
    cpus: str
    memory: str

    def to_request(self) -> ProvisionRequest:
        """The service's request; empty fields fall back to the image's defaults."""
        return ProvisionRequest(
            image=self.image,
            duration=self.duration.strip() or None,
            name=self.name.strip() or None,
            cpus=self.cpus.strip() or None,
            memory=self.memory.strip() or None,
        )


class ProvisionForm(VerticalScroll, can_focus=False):
    """Ask for a new lease; posts :class:`ProvisionForm.Submitted` with a valid request."""

    BINDINGS: ClassVar[list[BindingType]] = list(FORM_KEYS)

    @dataclass(eq=False)
    class Submitted(Message):
        """The user asked to provision this (already validated) request."""

        form: ProvisionForm
        request: ProvisionRequest

    error: reactive[str] = reactive("")
    """The first validation problem, or empty when the request is valid."""
    estimate: reactive[str] = reactive("")
    """The live cost estimate line."""

    def __init__(
        self, settings: Settings, *, policy: LeasePolicy | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.settings = settings
        self.policy = policy or LeasePolicy(settings)
        """The rules the form checks as the user types (the service's: ``service.policy``)."""
        self.outlook: Outlook | None = None
        """Where the user stands (spend, budget, quotas): set by :meth:`refresh_outlook`."""
        self._present: dict[str, bool | None] = dict.fromkeys(settings.images)
        self._layers: dict[str, tuple[int, int]] = {}

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        policy = self.policy
        shortest, longest = policy.duration_range
        yield Label("New lease", classes="form-title")
        yield Select(
            self._options(),
            id="image",
            allow_blank=False,
            compact=True,
            prompt="Image",
        )
        yield Static(id="image-info")
        with Horizontal(classes="field -hinted"):
            yield Label("Duration", classes="field-label")
            yield FormInput(
                id="duration",
                compact=True,
                placeholder=format_duration(policy.limits.default_duration),
                tooltip="e.g. 45m, 2h, 1h30m",
            )
        with Horizontal(id="presets"):
            for preset in PRESETS:
                yield Button(
                    preset,
                    id=f"preset-{preset}",
                    classes="preset",
                    compact=True,
                    disabled=not self._in_range(preset),
                )
        yield Static(
            f"allowed {format_duration(shortest)} to {format_duration(longest)}",
            id="duration-hint",
            classes="hint",
        )
        with Horizontal(classes="field"):
            yield Label("Name", classes="field-label")
            yield FormInput(id="name", compact=True, placeholder="auto", max_length=40)
        with Horizontal(classes="field -hinted"):
            yield Label("CPUs", classes="field-label")
            yield FormInput(id="cpus", compact=True)
        fewest, most = policy.cpus_range
        yield Static(f"allowed {fewest:g} to {most:g}", id="cpus-hint", classes="hint")
        with Horizontal(classes="field -hinted"):
            yield Label("Memory", classes="field-label")
            yield FormInput(id="memory", compact=True)
        least, largest = policy.memory_range
        yield Static(
            f"allowed {format_memory(least)} to {format_memory(largest)}",
            id="memory-hint",
            classes="hint",
        )
        yield Static(id="estimate")
        yield Static(id="budget")
        yield Static(id="form-error")
        yield Button("Provision", id="provision", variant="primary", compact=True)
        yield Static(id="activity")
        yield ProgressBar(id="pull-bar", show_eta=False)
        yield Static(id="pull-info")

    def on_mount(self) -> None:
        self._image_changed()

    # --- catalog ---------------------------------------------------------------------------

    def _options(self) -> list[tuple[Content, str]]:
        """One option per catalog image: name, rate, presence; the description below."""
        return [
            (
                Content.from_markup(
                    f"[b]$name[/b]  $rate  {_PRESENCE[self._present.get(name)]}\n[dim]$desc[/]",
                    name=name,
                    rate=format_rate(spec.hourly_rate),
                    desc=one_line(spec.description or spec.ref),
                ),
                name,
            )
            for name, spec in self.settings.images.items()
        ]

    def set_images(self, rows: Iterable[ImageRow]) -> None:
        """Whether each image is present locally (from ``LeaseService.images``)."""
        changed = False
        for row in rows:
            changed |= self._present.get(row.name, ...) != row.present
            self._present[row.name] = row.present
        if changed:
            select = self.query_one("#image", Select)
            chosen = select.value
            with select.prevent(Select.Changed):
                select.set_options(self._options())
                if chosen in self.settings.images:
                    select.value = chosen
                # The same value again repaints nothing: run the watcher for the new prompt.
                select.mutate_reactive(_SELECT_VALUE)
        self._show_image_info()

    @property
    def image(self) -> str:
        """The chosen catalog image."""
        value = self.query_one("#image", Select).value
        return value if isinstance(value, str) else next(iter(self.settings.images))

    @property
    def spec(self) -> ImageSpec:
        """The chosen image's catalog entry."""
        return self.settings.images[self.image]

    def _show_image_info(self) -> None:
        spec = self.spec
        self.query_one("#image-info", Static).update(
            Content.from_markup(
                "$desc\n[dim]$ref · $cpus CPU · $memory[/]",
                desc=one_line(spec.description or spec.ref),
                ref=spec.ref,
                cpus=f"{spec.cpus:g}",
                memory=format_memory(spec.memory),
            )
        )

    def _image_changed(self) -> None:
        spec = self.spec
        self.query_one("#cpus", Input).placeholder = f"{spec.cpus:g}"
        self.query_one("#memory", Input).placeholder = format_memory(spec.memory)
        self._show_image_info()
        self.validate_form()

    # --- validation ------------------------------------------------------------------------

    def _in_range(self, text: str) -> bool:
        try:
            self.policy.bounded_duration(text)
        except InvalidInput:
            return False
        return True

    def values(self) -> FormRequest:
        """The form's fields as typed."""
        return FormRequest(
            image=self.image,
            duration=self.query_one("#duration", Input).value,
            name=self.query_one("#name", Input).value,
            cpus=self.query_one("#cpus", Input).value,
            memory=self.query_one("#memory", Input).value,
        )

    def validate_form(self) -> bool:
        """Recompute the estimate and the first error; mark the offending input."""
        request = self.values().to_request()
        duration: timedelta | None
        try:
            duration = self.policy.bounded_duration(request.duration)
        except InvalidInput:
            duration = None
        if duration is not None:
            spec = self.spec
            self.estimate = (
                f"Estimate [b]{format_cost(self.policy.cost(self.image, duration))}[/b] "
                f"[dim]for {format_duration(duration)} at {format_rate(spec.hourly_rate)}[/]"
            )
        else:
            self.estimate = "Estimate [dim]—[/]"
        error, bad = "", None
        try:
            self.policy.validate(request)
        except InvalidInput as exc:
            error, bad = str(exc) or type(exc).__name__, exc.field
        refusal = self._show_budget(duration)
        if refusal and not error:
            error = refusal  # disabled with the reason, not refused after the submit
        self.error = error
        for field in FIELDS:
            self.query_one(f"#{field}", Input).set_class(field == bad, "-invalid")
        for field in HINTED:
            self.query_one(f"#{field}-hint", Static).set_class(field == bad, "-invalid")
        return not error

    def _show_budget(self, duration: timedelta | None) -> str | None:
        """The spend/budget line under the estimate; the reason this would be refused, if so."""
        outlook = self.outlook
        line = self.query_one("#budget", Static)
        line.display = outlook is not None
        if outlook is None:
            return None
        refusal = outlook.refusal(duration)
        if outlook.budget_hours is None:
            left = "no daily budget"
        else:
            remaining = outlook.remaining_hours or 0
            left = (
                f"{format_hours(Decimal(remaining))} of {format_hours(outlook.budget_hours)} "
                "lease-hours left today"
            )
        verdict = "[$error]does not fit[/]" if refusal else "[$success]fits[/]"
        line.update(
            Content.from_markup(
                f"Spent today [b]$spent[/b] · $left · {verdict}",
                spent=format_cost(outlook.spent_today),
                left=left,
            )
        )
        line.set_class(bool(refusal), "-refused")
        return refusal

    def set_outlook(self, outlook: Outlook | None) -> None:
        """Where the user stands now; the form checks the request against it as they type."""
        self.outlook = outlook
        self.validate_form()

    def refresh_outlook(self, service: LeaseService) -> None:
        """Read the user's spend, budget and quotas again (after any change)."""
        self._load_outlook(service)

    @work(group="outlook", exclusive=True, exit_on_error=False)
    async def _load_outlook(self, service: LeaseService) -> None:
        clock = getattr(self.app, "clock", None)  # the app's "now" (countdowns, costs)
        try:
            outlook = await service.outlook(clock() if callable(clock) else None)
        except Exception:
            return  # the banner reports Redis; the last outlook stays
        self.set_outlook(outlook)

    def watch_error(self, error: str) -> None:
        label = self.query_one("#form-error", Static)
        label.update(Content(one_line(error)))
        label.display = bool(error)
        self.query_one("#provision", Button).disabled = bool(error)

    def watch_estimate(self, estimate: str) -> None:
        self.query_one("#estimate", Static).update(Content.from_markup(estimate))

    @on(Select.Changed, "#image")
    def _on_image(self) -> None:
        self._image_changed()

    @on(Input.Changed)
    def _on_input(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_form()

    @on(Button.Pressed, ".preset")
    def _on_preset(self, event: Button.Pressed) -> None:
        event.stop()
        duration = self.query_one("#duration", Input)
        duration.value = str(event.button.label)
        duration.focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#provision")
    def _on_submit(self, event: Message) -> None:
        event.stop()
        self.submit()

    def submit(self) -> bool:
        """Post :class:`Submitted` if the form is valid; returns whether it was."""
        if not self.validate_form():
            self.app.bell()
            return False
        self.post_message(self.Submitted(self, self.values().to_request()))
        self.query_one("#name", Input).value = ""
        return True

    def focus_first(self) -> None:
        """Put the cursor in the form (the ``n`` key)."""
        self.query_one("#image", Select).focus()

    # --- provisioning feedback -------------------------------------------------------------

    def show_status_text(self, text: str) -> None:
        """A line about what provisioning is doing."""
        self.query_one("#activity", Static).update(Content(one_line(text)))

    def show_status(self, lease: Lease) -> None:
        """A lease started from this form moved on."""
        self.show_status_text(f"{lease.name}: {lease.status.value}…")
        if lease.status is LeaseStatus.PULLING:
            self._layers.clear()
            self.add_class("-pulling")

    def show_progress(self, progress: PullProgress) -> None:
        """One pull progress report (per layer) from the engine."""
        self.add_class("-pulling")
        if progress.layer:
            self._layers[progress.layer] = (progress.current, progress.total)
        current = sum(c for c, _ in self._layers.values())
        total = sum(t for _, t in self._layers.values())
        bar = self.query_one("#pull-bar", ProgressBar)
        bar.update(total=total or None, progress=current)
        layers = (
            f"layers {progress.layers_done}/{progress.layers_total}"
            if progress.layers_total
            else one_line(progress.status)  # the registry's words
        )
        amount = f" · {size(current)} / {size(total)}" if total else ""
        self.query_one("#pull-info", Static).update(Content(f"{layers}{amount}"))

    def finish(self, text: str) -> None:
        """Provisioning ended: hide the progress bar and say how it went."""
        self.remove_class("-pulling")
        self._layers.clear()
        self.query_one("#activity", Static).update(Content(one_line(text)))
