"""The log view while following (issue 15, item 6): scrolling back leaves follow mode until
``G``/end, wrapped lines reflow on resize, anchored regexes mean each line's ends, and container
colours show as colours (parsed into styles, never passed through as escape sequences)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.segment import Segment
from textual import events
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from containerlease_tui.tui.widgets.log_pane import clean_line, compile_filter
from containerlease_tui.tui.widgets.log_view import LogView

from .helpers import follow, footer_text, loaded, make, screen_lines, settle

SIZE = (120, 36)
LEASE = "k7m2x9qa"


def _title(app: Any) -> str:
    return str(app.main.logs.query_one("#log-title").render())


async def _fed(pilot: Pilot[Any], service: Any, view: LogView, *lines: str) -> None:
    """Feed the followed container more lines and wait until the view has them."""
    want = view.line_count + len(lines)
    service.feed(LEASE, *lines)
    await settle(pilot, lambda: view.line_count == want, what=f"{len(lines)} new lines")


@pytest.mark.parametrize("how", ["k", "up", "pageup", "home", "g", "wheel"])
async def test_scrolling_back_stays_put_until_G(how: str) -> None:
    lines = [f"line {n:04d}" for n in range(300)]
    app, service, _ = make(logs={LEASE: lines})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, LEASE)
        logs = app.main.logs
        view = logs.view
        await settle(pilot, lambda: view.line_count == 300, what="the history")
        await settle(pilot, lambda: view.scroll_y == view.max_scroll_y > 0)
        assert view.following and "following" in _title(app)
        assert "G Follow" not in footer_text(app)

        if how == "wheel":
            for _ in range(3):
                view.post_message(events.MouseScrollUp(view, 2, 2, 0, -1, 0, False, False, False))
        else:
            await pilot.press(how)
        await settle(pilot, lambda: not view.following, what="follow mode left")
        await settle(pilot, lambda: view.scroll_y < view.max_scroll_y, what="scrolled back")
        await pilot.pause()
        where = view.scroll_y
        top = view.top_line

        # New output keeps arriving (more than one batch): the rows being read stay put.
        for batch in range(3):
            await _fed(pilot, service, view, *(f"new {batch}-{n}" for n in range(20)))
            await pilot.pause()
            assert view.scroll_y == where and view.top_line == top
            assert not view.following
        assert view.line_count == 360
        assert f"scrolled back to line {top + 1:,} of 360 (G follows)" in _title(app)
        assert "G Follow" in footer_text(app)
        shown = "\n".join(screen_lines(app))
        assert f"line {top:04d}" in shown and "new 2-19" not in shown

        # j scrolls down but does not follow; G follows again, and new lines show.
        await pilot.press("j")
        await pilot.pause()
        assert not view.following
        await pilot.press("G")
        await settle(pilot, lambda: view.following, what="following again")
        assert view.scroll_y == view.max_scroll_y
        await _fed(pilot, service, view, "after G")
        await settle(pilot, lambda: "after G" in "\n".join(screen_lines(app)))
        assert view.scroll_y == view.max_scroll_y
        assert "following" in _title(app) and "scrolled back" not in _title(app)
        assert "G Follow" not in footer_text(app)


async def test_end_follows_again_and_the_ring_keeps_the_reading_place() -> None:
    lines = [f"line {n:04d}" for n in range(200)]
    app, service, _ = make(logs={LEASE: lines})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, LEASE)
        view = app.main.logs.view
        await settle(pilot, lambda: view.line_count == 200)
        view.max_lines = 250  # a small ring, so new output pushes old lines out
        view.lines = type(view.lines)(view.lines, maxlen=250)
        await pilot.press("pageup")
        await settle(pilot, lambda: not view.following)
        await pilot.pause()
        top = view.top_line
        reading = view.lines[top - view._first]
        await _fed(pilot, service, view, *(f"more {n}" for n in range(100)))  # 50 drop out
        await pilot.pause()
        assert len(view.lines) == 250
        assert view.top_line == top
        assert view.lines[int(view.scroll_y)] == reading  # the same line, 50 rows higher
        await pilot.press("end")
        await settle(pilot, lambda: view.following)
        assert view.scroll_y == view.max_scroll_y


async def test_filter_and_wrap_keep_a_scrolled_back_view_in_place() -> None:
    lines = [f"line {n:04d} {'even' if n % 2 == 0 else 'odd'}" for n in range(300)]
    app, _service, _ = make(logs={LEASE: lines})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, LEASE)
        logs = app.main.logs
        view = logs.view
        await settle(pilot, lambda: view.line_count == 300)
        await pilot.press("g")
        await settle(pilot, lambda: not view.following and view.scroll_y == 0)
        for _ in range(10):
            await pilot.press("j")
        await settle(pilot, lambda: view.scroll_y == 10)
        await pilot.press("w")
        await settle(pilot, lambda: view.wrap)
        assert view.lines[view.top_line] == "line 0010 even"
        assert not view.following
        await pilot.press("f", *"even", "enter")
        await settle(pilot, lambda: view.line_count == 150)
        assert view.lines[view.top_line - view._first] == "line 0010 even"
        assert not view.following


# --- the view on its own -----------------------------------------------------------------------


class ViewApp(App[None]):
    CSS = "LogView { padding: 0 1; scrollbar-size: 1 1; }"

    def compose(self) -> ComposeResult:
        yield LogView(id="v", max_lines=1000)


def _row_text(view: LogView, y: int) -> str:
    return "".join(segment.text for segment in view.render_line(y)).rstrip()


async def test_wrapped_lines_reflow_when_the_view_narrows_and_widens() -> None:
    long = "START " + " ".join(f"w{n:02d}" for n in range(60)) + " END"
    app = ViewApp()
    async with app.run_test(size=(100, 20)) as pilot:
        view = app.query_one(LogView)
        view.wrap = True
        view.write_lines(["first", long, "last"])
        await pilot.pause()

        for width in (60, 37, 23, 100, 45):
            await pilot.resize_terminal(width, 20)
            await settle(
                pilot,
                lambda: view._wrap_width == view.scrollable_content_region.width,
                what=f"a reflow at {width} columns",
            )
            await pilot.pause()
            rows = [_row_text(view, y) for y in range(view.row_count)]
            # Every character of the long line is on screen, in order, and no row is cut.
            # (rows are read back padded: compare without the spaces)
            assert "".join(rows[1:-1]).replace(" ", "") == long.replace(" ", ""), width
            assert rows[-1] == "last" and rows[0] == "first"
            assert all(len(row) <= view.scrollable_content_region.width for row in rows)
            text = "\n".join(screen_lines(app))
            assert "START" in text and "END" in text and "last" in text


async def test_a_resize_keeps_the_line_being_read_at_the_top() -> None:
    app = ViewApp()
    async with app.run_test(size=(80, 12)) as pilot:
        view = app.query_one(LogView)
        view.wrap = True
        view.write_lines([f"{n:03d} " + "x" * 150 for n in range(100)])
        await pilot.pause()
        view.action_scroll_home()
        view.scroll_to(y=view._row_of(40), animate=False, immediate=True)
        await pilot.pause()
        assert view.top_line == 40 and not view.following
        await pilot.resize_terminal(50, 12)
        await settle(pilot, lambda: view._wrap_width == view.scrollable_content_region.width)
        await pilot.pause()
        assert view.top_line == 40
        assert _row_text(view, 0).startswith("040 ")


def _matched(view: LogView, y: int) -> str:
    """The text of row ``y`` that carries the match style."""
    match = view.get_component_rich_style("log-view--match", partial=True)
    strip = view.render_line(y)
    return "".join(
        s.text
        for s in strip
        if isinstance(s, Segment) and s.style and match.bgcolor and s.style.bgcolor == match.bgcolor
    )


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        ("^abc", ["abc", "", "abc", "", "abc"]),
        ("abc$", ["", "abc", "", "abc", "abc"]),
        ("^abc$", ["", "", "", "", "abc"]),
    ],
)
async def test_anchored_regexes_highlight_every_matching_line(
    wrap: bool, regex: str, expected: list[str]
) -> None:
    lines = ["abc one", "one abc", "abc two", "two abc", "abc"]
    app = ViewApp()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(LogView)
        view.pattern = compile_filter(regex)
        view.wrap = wrap
        view.write_lines(lines)
        await pilot.pause()
        assert [_matched(view, y) for y in range(5)] == expected


async def test_anchors_mean_the_line_not_the_wrapped_row() -> None:
    app = ViewApp()
    async with app.run_test(size=(20, 12)) as pilot:
        view = app.query_one(LogView)
        view.pattern = compile_filter("^abc|xyz$")
        view.wrap = True
        # 17 columns: "abc" + 14 others, then a row starting "abc" that is no line's start.
        view.write_lines(["abc" + "-" * 14 + "abcdef xyz-" + "-" * 6 + "xyz"])
        await pilot.pause()
        rows = [_row_text(view, y) for y in range(view.row_count)]
        assert rows[1].startswith("abc")
        assert [_matched(view, y) for y in range(view.row_count)] == ["abc", "", "xyz"]


async def test_container_colours_show_as_styles_and_hostile_codes_do_not() -> None:
    raw = (
        "\x1b[1;31mERROR\x1b[0m disk \x1b[38;5;208mfull\x1b[39m"
        "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b[6n\x1b]0;pwned\x07\x9b31m\x1b[8m ok"
    )
    app = ViewApp()
    async with app.run_test(size=(60, 8)) as pilot:
        view = app.query_one(LogView)
        view.write_lines([clean_line(raw), clean_line("\x1b[32mgreen\x1b[0m\tafter tab")])
        await pilot.pause()
        strip = list(view.render_line(0))
        text = "".join(s.text for s in strip)
        assert text.rstrip() == "ERROR disk full ok"
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
        styles = {s.text: s.style for s in strip if s.text.strip()}
        error = styles["ERROR"]
        assert error is not None and error.bold and error.color is not None
        assert error.color.number == 1  # red
        full = styles["full"]
        assert full is not None and full.color is not None and full.color.number == 208
        ok = styles[" ok"]
        assert ok is not None and (ok.color is None or ok.color == view.rich_style.color)
        assert not ok.conceal  # SGR 8 is not honoured: nothing is hidden
        row = list(view.render_line(1))
        assert "".join(s.text for s in row).rstrip() == "green   after tab"
        green = next(s for s in row if s.text == "green")
        assert green.style is not None and green.style.color is not None
        assert green.style.color.number == 2
        # What reaches the terminal: the whole screen has no control but the ones Textual
        # writes itself (colours as styles), and none of the payloads.
        shown = "\n".join(screen_lines(app))
        assert "pwned" not in shown and "cm0g" not in shown and "\x1b" not in shown


async def test_colours_in_the_app_and_the_copy_is_plain_text() -> None:
    app, _service, _ = make(logs={LEASE: ["\x1b[31mred\x1b[0m plain", "\x1b[44mblue bg\x1b[m"]})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, LEASE)
        logs = app.main.logs
        view = logs.view
        await settle(pilot, lambda: view.line_count == 2)
        assert list(view.lines) == ["red plain", "blue bg"]
        red = next(s for s in view.render_line(0) if s.text == "red")
        assert red.style is not None and red.style.color is not None
        assert red.style.color.number == 1
        await pilot.press("c")
        await settle(pilot, lambda: app.clipboard != "")
        assert app.clipboard == "red plain\nblue bg"
        assert type(app.clipboard) is str
