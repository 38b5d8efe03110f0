"""A virtual log view: a bounded ring of plain lines, of which only the visible rows render.

Writing lines appends strings to a deque and moves the scroll position; nothing is measured,
styled or laid out until a row scrolls into sight (:meth:`LogView.render_line`), so a burst of
thousands of lines costs about as much as one screenful. Lines are data, never markup: each row
is built from :class:`~rich.segment.Segment` s of already-cleaned text; a line's colours come
from its parsed SGR spans (:class:`~containerlease_tui.sanitize.StyledLine`, turned into
:class:`~rich.style.Style` objects here, never back into escape sequences), a filter's matches and
the skip markers get their style from component classes.

Following: the view keeps the newest line in sight while :attr:`LogView.following` is true.
Scrolling back (up, ``k``, page up, home, ``g``, the mouse wheel, dragging the scrollbar up)
leaves follow mode; new lines still arrive below while the rows being read stay where they are;
:meth:`LogView.follow` (``G``, end) follows again, as ``less +F`` does.

Wrapping: a wrapped line is cut into rows of the view's width, recut (keeping the line at the top
in place) whenever that width changes.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from functools import lru_cache
from itertools import pairwise

from rich.cells import cell_len, get_character_cell_size
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollUp
from textual.strip import Strip

from containerlease_tui.logflow import is_marker
from containerlease_tui.sanitize import SgrStyle, StyledLine

Row = tuple[int, int, int]
"""A screen row of a wrapped view: (the line's sequence number, start, end) in characters."""


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _tabs(lines: Iterable[str]) -> list[str]:
    """Tabs expanded (to 8 columns, as a terminal does), so one character is one cell."""
    return [line.expandtabs() if "\t" in line and not is_marker(line) else line for line in lines]


def breaks(line: str, width: int) -> list[tuple[int, int]]:
    """Where ``line`` is cut into rows of at most ``width`` cells: (start, end) characters.

    An empty line is one empty row; a character wider than the row gets a row of its own.
    """
    n = len(line)
    if line.isascii():
        if n <= width:
            return [(0, n)]
        return [(i, min(i + width, n)) for i in range(0, n, width)]
    if cell_len(line) <= width:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = cells = 0
    for i, char in enumerate(line):
        size = get_character_cell_size(char)
        if cells + size > width and i > start:
            out.append((start, i))
            start, cells = i, 0
        cells += size
    out.append((start, n))
    return out


def _colour(value: int | tuple[int, int, int] | None) -> Color | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return Color.from_rgb(*value)
    return Color.from_ansi(value)


@lru_cache(maxsize=1024)
def sgr_style(style: SgrStyle) -> Style:
    """The Rich style of a parsed SGR style (only colours and text attributes)."""
    return Style(
        color=_colour(style.fg),
        bgcolor=_colour(style.bg),
        bold=style.bold or None,
        dim=style.dim or None,
        italic=style.italic or None,
        underline=style.underline or None,
        reverse=style.reverse or None,
        strike=style.strike or None,
    )


class LogView(ScrollView, can_focus=True):
    """The lines the log pane shows (already cleaned and filtered), newest last."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus {
            background-tint: $foreground 5%;
        }
    }
    LogView > .log-view--match {
        background: $warning 60%;
        color: $text;
        text-style: bold;
    }
    LogView > .log-view--marker {
        color: $warning;
        text-style: italic;
    }
    """

    COMPONENT_CLASSES = {"log-view--match", "log-view--marker"}

    following: reactive[bool] = reactive(True, init=False)
    """Whether the view keeps the newest line in sight (False: the user scrolled back)."""

    def __init__(self, *, max_lines: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: deque[str] = deque(maxlen=max_lines)
        """The shown lines (markers included), oldest first."""
        self._first = 0
        """The sequence number of ``lines[0]`` (lines are numbered as they arrive)."""
        self._rows: deque[Row] = deque()
        """Screen rows of a wrapped view (unwrapped, a row is a line)."""
        self._wrap = False
        self._wrap_width = 0
        self._width = 0
        self.pattern: re.Pattern[str] | None = None
        self._base: Style | None = None

    # --- content -----------------------------------------------------------------------------

    @property
    def wrap(self) -> bool:
        """Whether long lines wrap (else the view scrolls sideways)."""
        return self._wrap

    @wrap.setter
    def wrap(self, wrap: bool) -> None:
        if wrap != self._wrap:
            top = self.top_line
            self._wrap = wrap
            self._rebuild(top)

    @property
    def row_count(self) -> int:
        """Screen rows (wrapped pieces count one each)."""
        return len(self._rows) if self._wrap else len(self.lines)

    @property
    def line_count(self) -> int:
        """Lines written since the view was last cleared or refilled (kept or not)."""
        return self._first + len(self.lines)

    @property
    def top_line(self) -> int:
        """The sequence number of the line at the top of the view (0: the first ever)."""
        y = int(self.scroll_y)
        if not self._wrap:
            return self._first + min(y, max(0, len(self.lines) - 1))
        if not self._rows:
            return self._first
        return self._rows[min(y, len(self._rows) - 1)][0]

    def clear(self) -> None:
        """Remove every line, and follow."""
        self.lines.clear()
        self._rows.clear()
        self._first = 0
        self._width = 0
        self.following = True
        self._resize()

    def set_lines(self, lines: Iterable[str]) -> None:
        """Replace every line (a new filter, wrap, or resume). Following, the view shows the end;
        scrolled back, the line that was at the top stays there if it is among the new lines."""
        top: int | None = None
        if not self.following and self.lines:
            old = self.lines[min(self.top_line - self._first, len(self.lines) - 1)]
            new = _tabs(lines)
            top = next((i for i, line in enumerate(new) if line is old), None)
            if top is None:  # filtered out: keep the same place, as near as it gets
                top = min(self.top_line - self._first, max(0, len(new) - 1))
            lines = new
        else:
            lines = _tabs(lines)
        self.lines.clear()
        self.lines.extend(lines)
        self._first = 0
        self._rebuild(top)

    def write_lines(self, lines: list[str]) -> None:
        """Append lines; the view follows the end unless the user scrolled back."""
        if not lines:
            return
        lines = _tabs(lines)
        start = self.line_count
        dropped_lines = max(0, len(self.lines) + len(lines) - self.max_lines)
        self.lines.extend(lines)
        self._first += dropped_lines
        if self._wrap:
            width = max(1, self._wrap_width)
            rows = self._rows
            first_new = max(start, self._first)
            for seq in range(first_new, self.line_count):
                line = self.lines[seq - self._first]
                rows.extend((seq, a, b) for a, b in breaks(line, width))
            dropped = 0
            while rows and rows[0][0] < self._first:
                rows.popleft()
                dropped += 1
        else:
            widest = max(map(_cells, lines[-self.max_lines :]))
            if widest > self._width:
                self._width = widest
            dropped = dropped_lines
        self._resize()
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif dropped > 0:
            # Older rows left the ring: keep the rows the user is reading where they are.
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    def _rebuild(self, top: int | None = None) -> None:
        """Recompute the rows (wrap, width or lines changed); ``top``: the sequence number of the
        line to keep at the top when not following."""
        if self._wrap:
            width = self.scrollable_content_region.width or self.size.width or 80
            self._wrap_width = width
            rows: deque[Row] = deque()
            for seq, line in enumerate(self.lines, self._first):
                rows.extend((seq, a, b) for a, b in breaks(line, width))
            self._rows = rows
            self._width = 0
        else:
            self._rows = deque()
            self._width = max(map(_cells, self.lines), default=0)
        self._resize()
        if self.following or top is None:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.scroll_to(y=self._row_of(top), animate=False, immediate=True)
        self.refresh()

    def _row_of(self, seq: int) -> int:
        """The first screen row of line ``seq``."""
        if not self._wrap:
            return max(0, seq - self._first)
        # Rows are in line order: a binary search over the deque.
        rows = self._rows
        low, high = 0, len(rows)
        while low < high:
            mid = (low + high) // 2
            if rows[mid][0] < seq:
                low = mid + 1
            else:
                high = mid
        return low

    def _resize(self) -> None:
        self.virtual_size = Size(0 if self._wrap else self._width, self.row_count)

    def _reflow(self) -> None:
        """Recut wrapped rows for the view's width now, keeping the top line in place."""
        width = self.scrollable_content_region.width
        if self._wrap and width and width != self._wrap_width:
            self._rebuild(self.top_line)

    def on_resize(self, event: events.Resize) -> None:
        self._reflow()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()

    # --- following ---------------------------------------------------------------------------

    def follow(self) -> None:
        """Follow again: show the newest line and keep it in sight."""
        self.following = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def scroll_back(self) -> None:
        """Leave follow mode (the user is reading older lines), if there is anything above."""
        if self.max_scroll_y > 0:
            self.following = False

    def action_scroll_up(self) -> None:
        self.scroll_back()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.scroll_back()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.scroll_back()
        self.scroll_to(y=0, animate=False, immediate=True)

    def action_scroll_end(self) -> None:
        self.follow()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if not (event.ctrl or event.shift):
            self.scroll_back()

    def _on_scroll_up(self, event: ScrollUp) -> None:
        # A click above the scrollbar's thumb (Textual then runs the Widget's own handler, which
        # pages up: handlers of every class in the MRO run).
        self.scroll_back()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and self.is_vertical_scrollbar_grabbed:
            self.scroll_back()  # the thumb dragged up

    # --- rendering ---------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        self._reflow()  # a width change the resize did not announce (e.g. a scrollbar appeared)
        # The widget's style walks every ancestor: work it out once per repaint, not per row.
        self._base = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._base = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self._base or self.rich_style
        index = scroll_y + y
        if index >= self.row_count:
            return Strip.blank(width, base)
        if self._wrap:
            seq, start, end = self._rows[index]
            text = self.lines[seq - self._first]
            scroll_x = 0
        else:
            text = self.lines[index]
            start, end = 0, len(text)
            if (
                self.pattern is None
                and type(text) is str
                and text.isascii()
                and not is_marker(text)
            ):
                # The common row: one cell per character, so crop and pad it here (one strip).
                shown = text[scroll_x : scroll_x + width]
                return Strip([Segment(shown.ljust(width), base)], width)
        segments = self._segments(text, start, end, base)
        strip = Strip(segments, _cells(text[start:end]))
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _segments(self, text: str, start: int, end: int, base: Style) -> list[Segment]:
        """Row ``text[start:end]`` as segments: its colours, then the filter's matches over them
        (matched against the whole line, so ``^`` and ``$`` mean the line's ends)."""
        if is_marker(text):
            style = base + self.get_component_rich_style("log-view--marker", partial=True)
            return [Segment(text[start:end], style)]
        spans: list[tuple[int, int, Style]] = []
        if isinstance(text, StyledLine):
            spans = [
                (max(a, start), min(b, end), base + sgr_style(s))
                for a, b, s in text.spans
                if a < end and b > start
            ]
        matches: list[tuple[int, int]] = []
        if self.pattern is not None:
            matches = [
                (max(m.start(), start), min(m.end(), end))
                for m in self.pattern.finditer(text)
                if m.end() > m.start() and m.start() < end and m.end() > start
            ]
        if not spans and not matches:
            return [Segment(text[start:end], base)]
        cuts = sorted(
            {start, end, *(x for s in spans for x in s[:2]), *(x for m in matches for x in m)}
        )
        match_style = self.get_component_rich_style("log-view--match", partial=True)
        segments: list[Segment] = []
        si = mi = 0
        for a, b in pairwise(cuts):
            while si < len(spans) and spans[si][1] <= a:
                si += 1
            while mi < len(matches) and matches[mi][1] <= a:
                mi += 1
            style = spans[si][2] if si < len(spans) and spans[si][0] <= a else base
            if mi < len(matches) and matches[mi][0] <= a:
                style = style + match_style
            segments.append(Segment(text[a:b], style))
        return segments
