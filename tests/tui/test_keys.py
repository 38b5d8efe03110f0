"""Keys: what the footer shows in each focus context at 80 columns, escape out of every box, the
command palette really running its commands, the help screen listing every key.

Over the in-memory service (no Redis, no Docker); the footer is read from the rendered screen,
so a label cut off at the right edge fails the test.
"""

from __future__ import annotations

import base64
from typing import Any

from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input

from containerlease_tui.tui.screens import ConfirmScreen, HelpScreen
from containerlease_tui.tui.widgets import LeaseTable
from containerlease_tui.tui.widgets.inputs import FilterInput, FormInput
from containerlease_tui.tui.widgets.log_view import LogView

from .fakes import DEMO_LOGS
from .helpers import follow, footer_text, loaded, make, record_writes, settle

NARROW = (80, 24)

TABLE_FOOTER = "⏎ Logs n New e Extend d Delete s Shell r Restart a All / Filter ? Help q Quit"
LOG_FOOTER = "p Pause f Filter w Wrap ^s Save c Copy esc Leases n New ? Help q Quit"
FORM_FOOTER = "⏎ Provision esc Back tab Next"
FILTER_FOOTER = "⏎ Done esc Clear"


async def _footer_is(pilot: Pilot[Any], expected: str) -> None:
    app = pilot.app
    await settle(pilot, lambda: footer_text(app) == expected, within=3, what=repr(expected))


async def test_footer_at_80_columns_in_each_focus_context() -> None:
    app, _service, _ = make()
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        # The lease table: every lease key, enter included, and ? and q still on screen.
        assert isinstance(app.focused, LeaseTable)
        await _footer_is(pilot, TABLE_FOOTER)

        # The log pane: its own keys, the way back, and n ? q.
        await follow(pilot, "k7m2x9qa")
        assert isinstance(app.focused, LogView)
        await _footer_is(pilot, LOG_FOOTER)
        await pilot.press("p")
        await _footer_is(pilot, LOG_FOOTER.replace("p Pause", "p Resume"))
        await pilot.press("p")

        # The log filter: what enter and escape do there (no printable key: they would type).
        await pilot.press("f")
        assert isinstance(app.focused, FilterInput)
        await _footer_is(pilot, FILTER_FOOTER + " ^s Save")

        # A provision form field (the form opens on n at this width).
        await pilot.press("escape", "escape", "n")
        await settle(pilot, lambda: app.main.form.display and app.focused is not None)
        await pilot.press("tab")
        assert isinstance(app.focused, FormInput)
        await _footer_is(pilot, FORM_FOOTER)

        # The lease filter.
        await pilot.press("escape", "slash")
        assert isinstance(app.focused, FilterInput)
        await _footer_is(pilot, FILTER_FOOTER)


async def test_escape_leaves_the_form_then_q_quits() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        await pilot.press("n")
        await settle(pilot, lambda: app.main.form.query_one("#image").has_focus)
        await pilot.click("#name")
        name = app.main.form.query_one("#name", Input)
        assert name.has_focus
        await pilot.press(*"q?n")  # typed into the field: no quitting, no help, no new lease
        assert name.value == "q?n"
        assert app.is_running and not isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.focused, LeaseTable))
        await pilot.press("q")
        await settle(pilot, lambda: app.return_code is not None, what="q to quit")
    assert app.return_code == 0


async def test_escape_from_every_box_goes_back() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        # The lease filter: escape clears it and returns to the table.
        await pilot.press("slash", *"bob")
        await settle(pilot, lambda: table.row_count == 2)
        await pilot.press("escape")
        await settle(pilot, lambda: table.has_focus and table.row_count == 6)
        # The image picker (no text box): escape leaves the form too.
        await pilot.press("n")
        await settle(pilot, lambda: app.main.form.query_one("#image").has_focus)
        await pilot.press("escape")
        await settle(pilot, lambda: table.has_focus)
        # The log view: escape goes back to the table; the log filter first to its view.
        await follow(pilot, "k7m2x9qa")
        await pilot.press("f", *"GET", "escape")
        logs = app.main.logs
        await settle(pilot, lambda: logs.view.has_focus and logs.filter_text == "")
        await pilot.press("escape")
        await settle(pilot, lambda: table.has_focus)
        assert logs.lease is not None  # still following


async def test_enter_on_the_table_follows_the_logs() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease("k7m2x9qa")
        await pilot.press("enter")
        logs = app.main.logs
        await settle(pilot, lambda: logs.lease is not None and len(logs.lines) == len(DEMO_LOGS))
        assert logs.lease is not None and logs.lease.id == "k7m2x9qa"
        assert logs.view.has_focus


async def _run_command(pilot: Pilot[Any], query: str) -> None:
    """Open the palette, search, wait for the first hit to be highlighted, run it."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await settle(pilot, lambda: isinstance(app.screen, CommandPalette))
    palette = app.screen
    assert isinstance(palette, CommandPalette)
    await pilot.press(*query)

    def first_hit() -> bool:
        options = palette.query_one("CommandList")
        return options.option_count > 0 and options.highlighted == 0  # type: ignore[attr-defined]

    await settle(pilot, first_hit, what=f"palette hits for {query!r}")
    await pilot.press("enter")
    await settle(pilot, lambda: not isinstance(app.screen, CommandPalette))


async def test_palette_commands_do_what_they_say() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease("k7m2x9qa")
        await _run_command(pilot, "Logs (enter")
        logs = app.main.logs
        await settle(pilot, lambda: len(logs.lines) == len(DEMO_LOGS))
        assert logs.lease is not None and logs.lease.id == "k7m2x9qa"

        await _run_command(pilot, "Logs: Copy")
        await settle(pilot, lambda: app.clipboard == "\n".join(DEMO_LOGS))

        await _run_command(pilot, "Delete (d)")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")


async def test_copy_writes_osc52_to_the_terminal() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot)
        written = record_writes(app)
        await follow(pilot, "k7m2x9qa")
        await settle(pilot, lambda: len(app.main.logs.lines) == len(DEMO_LOGS))
        await pilot.press("f", *"orders", "enter", "c")
        wanted = "\n".join(line for line in DEMO_LOGS if "orders" in line)
        sequence = f"\x1b]52;c;{base64.b64encode(wanted.encode()).decode()}\a"
        await settle(pilot, lambda: sequence in "".join(written), what="the OSC 52 sequence")


async def test_help_lists_every_key_and_the_reaper_line() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 50)) as pilot:
        await loaded(pilot)
        await settle(pilot, lambda: app.main.status.reaper_line is not None)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(str(w.render()) for w in app.screen.query(".help-keys"))
        keys = (
            "n",
            "enter, l",
            "e",
            "d",
            "s",
            "r",
            "t",
            "o",
            "a",
            "/",
            "?",
            "q",
            "p",
            "f",
            "w",
            "c",
        )
        for key in (*keys, "j", "k", "g", "G"):
            assert f"\n{key} " in f"\n{text}", key
        for key in ("ctrl+s", "ctrl+p", "esc", "tab"):
            assert key in text, key
        note = str(app.screen.query_one("#help-note").render())
        assert "reaper alive on devbox (pid 4242, no pass yet)" in note  # in full, not shortened
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "New (n)",
            "Logs (enter, l)",
            "Extend (e)",
            "Delete (d)",
            "Shell (s)",
            "Restart (r)",
            "Stop/Start (t)",
            "Sort (o)",
            "Filter (/)",
            "Help (?)",
            "Logs: Save (ctrl+s)",
            "Logs: Pause / resume (p)",
        ):
            assert title in titles
