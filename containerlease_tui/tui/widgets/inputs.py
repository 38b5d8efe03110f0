"""Inputs whose ``enter`` and ``escape`` show in the footer with what they do here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import BindingType
from textual.message import Message
from textual.widgets import Input

from containerlease_tui.tui.keys import FILTER_KEYS, FORM_SUBMIT


class FormInput(Input):
    """A field of the provision form: ``enter`` provisions (the form handles the submission)."""

    BINDINGS: ClassVar[list[BindingType]] = [FORM_SUBMIT]


class FilterInput(Input):
    """A filter box: ``enter`` keeps the filter, ``escape`` clears it; both leave the box."""

    BINDINGS: ClassVar[list[BindingType]] = list(FILTER_KEYS)

    @dataclass(eq=False)
    class Cleared(Message):
        """Escape: the filter was cleared and the box should be left."""

        input: FilterInput

        @property
        def control(self) -> FilterInput:
            return self.input

    def action_clear(self) -> None:
        """Clear the filter and ask the owner to move the cursor out."""
        self.value = ""
        self.post_message(self.Cleared(self))
