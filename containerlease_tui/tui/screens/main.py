"""The main screen: provision form, leases, logs, the banner and the status bar."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from containerlease_tui.config import Settings
from containerlease_tui.tui.widgets import LeasesPane, LogPane, ProvisionForm, StatusBar

MIN_WIDTH = 80
MIN_HEIGHT = 24
WIDE = 110
"""From this many columns the provision form is always shown; below it, only after ``n``
(so the table and the logs get the width)."""


class MainScreen(Screen[None]):
    """Three panes; a banner (hidden while healthy) on top; a status bar and the keys below.

    A terminal smaller than 80x24 shows a message instead of the panes; one narrower than
    :data:`WIDE` (class ``-narrow``) hides the provision form until ``n`` opens it. Its styles
    (``main.tcss``) are loaded by the app: Textual reads no ``CSS_PATH`` of a default screen.
    """

    AUTO_FOCUS = "#lease-table"
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (WIDE, "-wide"),
    ]

    form_open: reactive[bool] = reactive(False)
    """On a narrow terminal: the provision form is shown (``n``) until escape or success."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(id="main")
        self.settings = settings

    def compose(self) -> ComposeResult:
        yield Static(id="banner")
        yield Static(id="too-small")
        with Horizontal(id="panes"):
            yield ProvisionForm(self.settings, id="provision-form")
            with Vertical(id="right"):
                yield LeasesPane(id="leases")
                yield LogPane(id="logs")
        yield StatusBar(id="status")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def form(self) -> ProvisionForm:
        """The provision form."""
        return self.query_one(ProvisionForm)

    @property
    def leases(self) -> LeasesPane:
        """The leases pane."""
        return self.query_one(LeasesPane)

    @property
    def logs(self) -> LogPane:
        """The log pane."""
        return self.query_one(LogPane)

    @property
    def status(self) -> StatusBar:
        """The status bar."""
        return self.query_one(StatusBar)

    @property
    def narrow(self) -> bool:
        """Narrower than :data:`WIDE`: the form is shown only while open."""
        return self.size.width < WIDE

    def watch_form_open(self, form_open: bool) -> None:
        self.set_class(form_open, "-form-open")

    def show_banner(self, text: Content | None) -> None:
        """Say what is down (None hides the banner)."""
        banner = self.query_one("#banner", Static)
        banner.update(text or "")
        banner.set_class(text is not None, "-visible")

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def on_mount(self) -> None:
        self._check_size(self.size.width, self.size.height)

    def _check_size(self, width: int, height: int) -> None:
        if width < WIDE and not self.form_open and self.form.has_focus_within:
            # The form just folded away under the cursor: keep typing out of a hidden box.
            self.leases.table.focus()
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                Content(
                    f"The terminal is too small: {width}x{height}.\n"
                    f"ContainerLease needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n\n"
                    "Enlarge the window, or press q to quit."
                )
            )
