"""The help screen: every key, by where it works."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str]
"""(keys as shown, what they do)"""


class HelpScreen(ModalScreen[None]):
    """Lists the keys of each part of the app; any of escape, q or ? closes it."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help")]

    def __init__(self, sections: Sequence[tuple[str, Iterable[KeyRow]]]) -> None:
        super().__init__()
        self.sections = [(title, list(rows)) for title, rows in sections]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content.from_markup(
                    "[b]ContainerLease — keys[/b]  [dim]esc closes · ctrl+p: command palette · "
                    "the mouse works everywhere[/]"
                ),
                id="dialog-title",
            )
            with VerticalScroll(id="help-body"):
                for title, rows in self.sections:
                    yield Static(Content(title), classes="help-section")
                    width = max((len(keys) for keys, _ in rows), default=0) + 2
                    lines = [
                        Content.assemble((keys.ljust(width), "bold"), what) for keys, what in rows
                    ]
                    yield Static(Content("\n").join(lines), classes="help-keys")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
