"""Every key of the app in one place: the footer, the help screen and the command palette read
these lists, so the three never disagree.

The footer is contextual. The lease table shows the lease keys; the log pane shows its own; an
input shows ``esc`` and ``enter``. The lease keys also work (unshown) from the log pane, because
the app binds them too, with ``show=False`` (:func:`hidden`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from textual.binding import Binding

GLOBAL_KEYS: list[Binding] = [
    Binding("n", "new_lease", "New", id="new_lease", tooltip="New lease: open the provision form"),
    Binding("question_mark", "help", "Help", key_display="?", id="help", tooltip="List every key"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit (the in-app reaper stops too)"),
]
"""Shown wherever no input has the cursor."""

LEASE_KEYS: list[Binding] = [
    Binding("enter", "app.logs", "Logs", id="logs", tooltip="Follow the selected lease's output"),
    Binding("e", "app.extend", "Extend", id="extend", tooltip="Extend the selected lease"),
    Binding("d", "app.delete", "Delete", id="delete", tooltip="Delete the lease and its container"),
    Binding("s", "app.shell", "Shell", id="shell", tooltip="Open a shell in the lease's container"),
    Binding(
        "r",
        "app.restart",
        "Restart",
        id="restart",
        tooltip="Restart the selected lease's container",
    ),
    Binding(
        "t",
        "app.stop_start",
        "Stop/Start",
        show=False,  # the footer has no room at 80 columns: help and palette list it
        id="stop_start",
        tooltip="Stop the selected lease's container, or start it again",
    ),
    Binding(
        "o",
        "app.sort",
        "Sort",
        show=False,
        id="sort",
        tooltip="Sort by time left, cost, owner, status (or click a header)",
    ),
    Binding("a", "app.toggle_all", "All", id="toggle_all", tooltip="Show my leases or everybody's"),
    Binding(
        "slash",
        "app.filter",
        "Filter",
        key_display="/",
        id="filter",
        tooltip="Filter the leases by text",
    ),
    Binding(
        "y",  # yank, as in vi (p pauses the logs, c copies their lines)
        "app.copy_port",
        "Copy port",
        show=False,  # no room in the footer at 80 columns either: help and palette list it
        id="copy_port",
        tooltip="Copy the lease's host:port (OSC 52)",
    ),
]
"""What to do with the selected lease: shown in the footer while the lease table has focus."""

TABLE_KEYS: list[Binding] = [
    replace(GLOBAL_KEYS[0], action=f"app.{GLOBAL_KEYS[0].action}"),
    *LEASE_KEYS,
]
"""The lease table's footer: ``n`` first, then the lease keys (``?`` and ``q`` follow)."""

TABLE_NAV: list[Binding] = [
    Binding("j", "cursor_down", "Down", show=False, id="down", tooltip="Next lease"),
    Binding("k", "cursor_up", "Up", show=False, id="up", tooltip="Previous lease"),
    Binding("g", "scroll_top", "First", show=False, id="first", tooltip="First lease"),
    Binding("G", "scroll_bottom", "Last", show=False, id="last", tooltip="Last lease"),
]
"""vi-style moves in the lease table (the arrows, home and end work too)."""

LOGS_ALIAS = Binding(
    "l", "logs", "Logs", show=False, id="logs_alias", tooltip="Follow the selected lease's output"
)

LOG_KEYS: list[Binding] = [
    Binding("p", "pause", "Pause", id="log_pause", tooltip="Pause following (lines keep arriving)"),
    Binding("p", "resume", "Resume", id="log_resume", tooltip="Resume following"),
    Binding(
        "f", "filter", "Filter", id="log_filter", tooltip="Filter by text or regex (highlighted)"
    ),
    Binding("w", "toggle_wrap", "Wrap", id="log_wrap", tooltip="Wrap long lines on / off"),
    Binding("ctrl+s", "save", "Save", id="log_save", tooltip="Save to ./containerlease-<id>.log"),
    Binding("c", "copy", "Copy", id="log_copy", tooltip="Copy the shown lines (OSC 52 clipboard)"),
    Binding("escape", "app.leave", "Leases", id="log_leave", tooltip="Back to the leases table"),
    Binding(
        "G",
        "follow",
        "Follow",
        key_display="G",
        id="log_follow",
        tooltip="Follow again: jump to the newest line (end does too)",
    ),
    Binding(
        "k",
        "back_line",
        "Up",
        show=False,
        id="log_up",
        tooltip="Scroll back a line, leaving follow mode (up, page up, the wheel too)",
    ),
    Binding("j", "forward_line", "Down", show=False, id="log_down", tooltip="Scroll down a line"),
    Binding(
        "g",
        "top",
        "Top",
        show=False,
        id="log_top",
        tooltip="The oldest kept line, leaving follow mode (home too)",
    ),
]
"""The log pane's keys (``p`` reads Pause or Resume, whichever it would do; ``G`` shows only
while scrolled back, when it would follow again)."""

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
    Binding(
        "v",
        "activity",
        "Activity",
        id="activity",
        tooltip="Activity: who did what, live (the event log)",
    ),
    # T, not t: t stops/starts the selected lease's container.
    Binding(
        "T",
        "team",
        "Team",
        key_display="T",
        id="team",
        tooltip="Team: spend per user, budget, the box's capacity",
    ),
    Binding(
        "R",
        "reapers",
        "Reapers",
        key_display="R",
        id="reapers",
        tooltip="Reapers: who cleans up, when next",
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


def key_label(binding: Binding, keymap: Keymap | None = None) -> str:
    """How the help screen and the palette write a binding's key (the user's, if remapped)."""
    if keymap is not None and binding.id in keymap.keys:
        return ", ".join(_display(key) for key in keymap.keys[binding.id].split(","))
    if binding.key_display:
        return binding.key_display
    return _display(binding.key)


_DISPLAY = {"enter": "enter", "escape": "esc", "question_mark": "?", "slash": "/"}


def _display(key: str) -> str:
    return _DISPLAY.get(key, key)


# --- the user's keymap ----------------------------------------------------------------------

KEYMAP_FILE = "keymap.toml"
"""The user's own keymap, in the config folder (``~/.config/containerlease/keymap.toml``)."""

RESERVED_KEYS = frozenset(
    {"ctrl+c", "ctrl+q", "ctrl+p", "tab", "shift+tab", "up", "down", "left", "right"}
)
"""Keys Textual or the inputs own: no binding may take them."""

_TOGETHER = {"log_pause": ("log_resume",)}
"""Ids that move together: ``p`` is pause or resume, whichever it would do."""

_KEY = re.compile(r"(?:(?:ctrl|shift|alt|meta|super|hyper)\+)*[A-Za-z0-9_]+|[^\sA-Za-z0-9,]")
_NAMES = {
    "?": "question_mark",
    "/": "slash",
    " ": "space",
    "esc": "escape",
    "return": "enter",
}


def _contexts() -> list[tuple[str, list[Binding]]]:
    """The bindings that answer together, by where: a key may serve one binding in each."""
    app_keys = [*GLOBAL_KEYS, LOGS_ALIAS]
    return [
        ("the leases table", [*app_keys, *LEASE_KEYS, *TABLE_NAV]),
        ("the logs pane", [*app_keys, *LEASE_KEYS, *LOG_KEYS]),
    ]


def configurable() -> dict[str, Binding]:
    """Every binding a keymap may change, by id."""
    out: dict[str, Binding] = {}
    for _where, bindings in _contexts():
        for binding in bindings:
            if binding.id:
                out.setdefault(binding.id, binding)
    return out


@dataclass
class Keymap:
    """The user's keys by binding id (only the entries that apply) and one line per problem."""

    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def key_of(self, binding_id: str) -> str:
        """The key that runs this binding now (the first, if several)."""
        if binding_id in self.keys:
            return self.keys[binding_id].split(",")[0]
        return configurable()[binding_id].key

    def label(self, binding_id: str) -> str:
        """The key as the help screen writes it."""
        return key_label(configurable()[binding_id], self)

    def textual(self) -> dict[str, str]:
        """What ``App.set_keymap`` takes (the ids that move together included)."""
        out = dict(self.keys)
        for lead, followers in _TOGETHER.items():
            if lead in out:
                for follower in followers:
                    out[follower] = out[lead]
        return out


def _normalize(text: str) -> list[str] | str:
    """The keys of one entry in Textual's names, or the reason it is not a key list."""
    keys = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            return "an empty key"
        part = _NAMES.get(part.lower(), part)
        if not _KEY.fullmatch(part):
            return f"{part!r} is not a key (write e.g. e, ctrl+e, f5, shift+tab)"
        if "+" in part:
            *mods, last = part.split("+")
            part = "+".join([*(m.lower() for m in mods), last])
        keys.append(part)
    return keys


def build_keymap(*tables: tuple[str, Mapping[str, object]]) -> Keymap:
    """The keymap from ``(where, table)`` pairs, later ones winning (the config's ``[keymap]``,
    then the user's ``keymap.toml``).

    An unknown id, a value that is not a key, a reserved key or two bindings wanting one key in
    the same place each give one line naming them; the other entries still apply.
    """
    known = configurable()
    wanted: dict[str, tuple[str, list[str]]] = {}
    keymap = Keymap()
    for where, table in tables:
        for binding_id, value in table.items():
            if binding_id not in known:
                keymap.problems.append(
                    f"keymap ({where}): unknown binding {binding_id!r}; "
                    f"known: {', '.join(sorted(known))}"
                )
                continue
            if not isinstance(value, str):
                keymap.problems.append(
                    f'keymap ({where}): {binding_id} must be a key in quotes, e.g. "ctrl+e"'
                )
                continue
            keys = _normalize(value)
            if isinstance(keys, str):
                keymap.problems.append(f"keymap ({where}): {binding_id}: {keys}")
                continue
            reserved = [key for key in keys if key in RESERVED_KEYS]
            if reserved:
                keymap.problems.append(
                    f"keymap ({where}): {binding_id} = {reserved[0]!r}: that key is reserved"
                )
                continue
            wanted[binding_id] = (where, keys)
    # Conflicts: in each place, every key serves at most one binding (followers excepted).
    rejected: set[str] = set()
    for place, bindings in _contexts():
        owner: dict[str, str] = {}
        for binding in bindings:
            if binding.id is None or binding.id in {f for v in _TOGETHER.values() for f in v}:
                continue
            keys = wanted[binding.id][1] if binding.id in wanted else binding.key.split(",")
            for key in keys:
                other = owner.get(key)
                if other is not None and other != binding.id:
                    for loser in (binding.id, other):
                        if loser in wanted and loser not in rejected:
                            rejected.add(loser)
                    keymap.problems.append(
                        f"keymap: {key!r} is bound to both {other} and {binding.id} in {place}; "
                        "neither change applies"
                        if binding.id in wanted and other in wanted
                        else f"keymap: {key!r} is bound to both {other} and {binding.id} in "
                        f"{place}; {binding.id if binding.id in wanted else other} keeps its "
                        "default key"
                    )
                owner.setdefault(key, binding.id)
    for binding_id, (_where, keys) in wanted.items():
        if binding_id not in rejected:
            keymap.keys[binding_id] = ",".join(keys)
    keymap.problems = list(dict.fromkeys(keymap.problems))
    return keymap


def load_user_keymap(folder: Path | None, configured: Mapping[str, object]) -> Keymap:
    """The config file's ``[keymap]`` with the user's ``keymap.toml`` (in ``folder``) over it.

    A ``keymap.toml`` that cannot be read or parsed is one problem line; the rest applies.
    """
    tables: list[tuple[str, Mapping[str, object]]] = [("config [keymap]", configured)]
    problems: list[str] = []
    if folder is not None:
        path = folder / KEYMAP_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"keymap: cannot read {path}: {' '.join(str(exc).split())[:200]}")
            data = None
        if data is not None:
            table = data.get("keymap", data)
            if isinstance(table, dict):
                tables.append((str(path), table))
            else:
                problems.append(f"keymap: {path}: [keymap] must be a table")
    keymap = build_keymap(*tables)
    keymap.problems[:0] = problems
    return keymap


def shown_bindings(bindings: Iterable[Binding]) -> list[Binding]:
    """The bindings with a description (what the help screen lists)."""
    return [b for b in bindings if b.description]
