"""Every key of the app in one place: the footer, the help screen and the command palette read
these lists, so the three never disagree.

The footer is contextual. The lease table shows the lease keys; the log pane shows its own; an
input shows ``esc`` and ``enter``. The lease keys also work (unshown) from the log pane, because
the app binds them too, with ``show=False`` (:func:`hidden`).
"""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding

GLOBAL_KEYS: list[Binding] = [
    Binding("n", "new_lease", "New", tooltip="New lease: open the provision form"),
    Binding("question_mark", "help", "Help", key_display="?", tooltip="List every key"),
    Binding("q", "quit", "Quit", tooltip="Quit (the in-app reaper stops too)"),
]
"""Shown wherever no input has the cursor."""

LEASE_KEYS: list[Binding] = [
    Binding("enter", "app.logs", "Logs", tooltip="Follow the selected lease's output"),
    Binding("e", "app.extend", "Extend", tooltip="Extend the selected lease"),
    Binding("d", "app.delete", "Delete", tooltip="Delete the lease and its container"),
    Binding("s", "app.shell", "Shell", tooltip="Open a shell in the lease's container"),
    Binding("r", "app.restart", "Restart", tooltip="Restart the selected lease's container"),
    Binding("a", "app.toggle_all", "All", tooltip="Show my leases or everybody's"),
    Binding("slash", "app.filter", "Filter", key_display="/", tooltip="Filter the leases by text"),
]
"""What to do with the selected lease: shown in the footer while the lease table has focus."""

TABLE_KEYS: list[Binding] = [
    replace(GLOBAL_KEYS[0], action=f"app.{GLOBAL_KEYS[0].action}"),
    *LEASE_KEYS,
]
"""The lease table's footer: ``n`` first, then the lease keys (``?`` and ``q`` follow)."""

LOGS_ALIAS = Binding("l", "logs", "Logs", show=False, tooltip="Follow the selected lease's output")

LOG_KEYS: list[Binding] = [
    Binding("p", "pause", "Pause", tooltip="Pause following (lines keep arriving)"),
    Binding("p", "resume", "Resume", tooltip="Resume following"),
    Binding("f", "filter", "Filter", tooltip="Filter by text or regex (highlighted)"),
    Binding("w", "toggle_wrap", "Wrap", tooltip="Wrap long lines on / off"),
    Binding("ctrl+s", "save", "Save", tooltip="Save to ./containerlease-<id>.log"),
    Binding("c", "copy", "Copy", tooltip="Copy the shown lines (OSC 52 clipboard)"),
    Binding("escape", "app.leave", "Leases", tooltip="Back to the leases table"),
]
"""The log pane's keys (``p`` reads Pause or Resume, whichever it would do)."""

FORM_KEYS: list[Binding] = [
    Binding("escape", "app.leave", "Back", tooltip="Leave the form for the leases table"),
    Binding("tab", "app.focus_next", "Next", tooltip="Next field"),
    Binding("shift+tab", "app.focus_previous", "Previous", show=False, tooltip="Previous field"),
]
"""The provision form's keys (``enter`` in a field provisions: see ``FormInput``)."""

FORM_SUBMIT = Binding("enter", "submit", "Provision", tooltip="Provision (when the form is valid)")

FILTER_KEYS: list[Binding] = [
    Binding("enter", "submit", "Done", tooltip="Keep the filter and leave the box"),
    Binding("escape", "clear", "Clear", tooltip="Clear the filter and leave the box"),
]
"""Keys of a filter box (the lease filter, the log filter)."""


VIEW_KEYS: list[Binding] = [
    Binding("v", "activity", "Activity", tooltip="Activity: who did what, live (the event log)"),
    Binding("t", "team", "Team", tooltip="Team: spend per user, budget, the box's capacity"),
    Binding(
        "R", "reapers", "Reapers", key_display="R", tooltip="Reapers: who cleans up, when next"
    ),
]
"""The views over everybody's work; from anywhere but a box (unshown in the main footer)."""

VIEW_NEW = Binding("n", "new_lease", "New", tooltip="Back to the leases, in the provision form")
"""``n`` on a view: leave it for the provision form (the form is on the main screen)."""

ACTIVITY_KEYS: list[Binding] = [
    Binding("c", "copy", "Copy command", tooltip="Copy the selected event's command (OSC 52)"),
    Binding("slash", "filter", "Filter", key_display="/", tooltip="Filter the events by text"),
    Binding("escape", "back", "Back", tooltip="Back to the leases"),
    VIEW_NEW,
]
"""The Activity screen's keys."""

VIEW_BACK: list[Binding] = [
    Binding("escape", "back", "Back", tooltip="Back to the leases"),
    Binding("ctrl+r", "reload", "Reload", tooltip="Read it again now"),
    VIEW_NEW,
]
"""The Team and Reapers screens' keys (they refresh themselves too)."""


def hidden(binding: Binding) -> Binding:
    """The same key and action on the app itself, kept out of the footer."""
    return replace(binding, action=binding.action.removeprefix("app."), show=False)


def key_label(binding: Binding) -> str:
    """How the help screen and the palette write a binding's key."""
    if binding.key_display:
        return binding.key_display
    return {"enter": "enter", "escape": "esc"}.get(binding.key, binding.key)
