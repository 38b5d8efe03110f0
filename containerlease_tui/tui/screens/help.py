"""The help screen: every key, by where it works."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str]
"""(keys as shown, what they do)"""


class HelpScreen(ModalScreen[None]):
    """Lists the keys of each part of the app; any of escape, q or ? closes it.

    Two columns of sections from :data:`WIDE` columns on, one below.
    """

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help")]
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (110, "-wide"),
    ]

    def __init__(
        self, sections: Sequence[tuple[str, Iterable[KeyRow]]], note: Content | str = ""
    ) -> None:
        super().__init__()
        self.sections = [(title, list(rows)) for title, rows in sections]
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content.from_markup(
                    "[b]ContainerLease — keys[/b]  [dim]esc closes · ctrl+p: command palette · "
                    "the mouse works everywhere[/]"
                ),
                id="dialog-title",
            )
            with VerticalScroll(id="help-body"), Grid(id="help-grid"):
                for title, rows in self.sections:
                    width = max((len(keys) for keys, _ in rows), default=0) + 2
                    lines = [
                        Content.assemble((keys.ljust(width), "bold"), what) for keys, what in rows
                    ]
                    with Vertical(classes="help-block"):
                        yield Static(Content(title), classes="help-section")
                        yield Static(Content("\n").join(lines), classes="help-keys")
            if self.note:
                yield Static(self.note, id="help-note")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
