"""The main screen: provision form, leases, logs, the banner and the status bar."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from containerlease_tui.config import Settings
from containerlease_tui.tui.widgets import LeasesPane, LogPane, ProvisionForm, StatusBar

MIN_WIDTH = 80
MIN_HEIGHT = 24


class MainScreen(Screen[None]):
    """Three panes; a banner (hidden while healthy) on top; a status bar and the keys below.

    A terminal smaller than 80x24 shows a message instead of the panes. Its styles
    (``main.tcss``) are loaded by the app: Textual reads no ``CSS_PATH`` of a default screen.
    """

    AUTO_FOCUS = "#lease-table"

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
