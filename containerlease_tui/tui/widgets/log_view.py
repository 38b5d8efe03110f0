"""A virtual log view: a bounded ring of plain lines, of which only the visible rows render.

Writing lines appends strings to a deque and moves the scroll position; nothing is measured,
styled or laid out until a row scrolls into sight (:meth:`LogView.render_line`), so a burst of
thousands of lines costs about as much as one screenful. Lines are data, never markup: each row
is a plain :class:`~rich.segment.Segment` of already-cleaned text; a filter's matches and the skip
markers get their style from component classes.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual.events import Resize
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from containerlease_tui.logflow import is_marker


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _tabs(lines: Iterable[str]) -> list[str]:
    """Tabs expanded (to 8 columns, as a terminal does), so one character is one cell."""
    return [line.expandtabs() if "\t" in line and not is_marker(line) else line for line in lines]


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

    def __init__(self, *, max_lines: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: deque[str] = deque(maxlen=max_lines)
        """The shown lines (markers included), oldest first."""
        self._rows: deque[str] = self.lines
        """Screen rows: the lines themselves, or (wrapped) their pieces."""
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
            self._wrap = wrap
            self._rebuild()

    @property
    def row_count(self) -> int:
        """Screen rows (wrapped pieces count one each)."""
        return len(self._rows)

    def clear(self) -> None:
        """Remove every line."""
        self.lines.clear()
        self._rows = self.lines if not self._wrap else deque(maxlen=self.max_lines * 4)
        self._width = 0
        self._resize()

    def set_lines(self, lines: Iterable[str]) -> None:
        """Replace every line (a new filter, wrap, or resume), then follow the end."""
        self.lines.clear()
        self.lines.extend(_tabs(lines))
        self._rebuild()

    def write_lines(self, lines: list[str]) -> None:
        """Append lines; the view follows the end unless the user scrolled up."""
        if not lines:
            return
        lines = _tabs(lines)
        following = self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        before = len(self._rows)
        if self._wrap:
            self.lines.extend(lines)
            pieces = self._pieces(lines)
            added = len(pieces)
            self._rows.extend(pieces)
        else:
            added = len(lines)
            self.lines.extend(lines)
            widest = max(map(_cells, lines[-self.max_lines :]))
            if widest > self._width:
                self._width = widest
        dropped = max(0, before + added - (self._rows.maxlen or 0))
        self._resize()
        if following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif dropped:
            # Older rows left the ring: keep the rows the user is reading where they are.
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    def _pieces(self, lines: Iterable[str]) -> list[str]:
        width = max(1, self._wrap_width)
        out: list[str] = []
        for line in lines:
            if _cells(line) <= width:
                out.append(line)
            elif line.isascii():
                out.extend(line[i : i + width] for i in range(0, len(line), width))
            else:
                out.extend(chop_cells(line, width))
        return out

    def _rebuild(self) -> None:
        if self._wrap:
            self._wrap_width = self.scrollable_content_region.width or self.size.width or 80
            rows: deque[str] = deque(maxlen=self.max_lines * 4)
            rows.extend(self._pieces(self.lines))
            self._rows = rows
            self._width = 0
        else:
            self._rows = self.lines
            self._width = max(map(_cells, self.lines), default=0)
        self._resize()
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(0 if self._wrap else self._width, len(self._rows))

    def on_resize(self, event: Resize) -> None:
        if self._wrap and self.scrollable_content_region.width != self._wrap_width:
            self._rebuild()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()

    # --- rendering ---------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
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
        if index >= len(self._rows):
            return Strip.blank(width, base)
        text = self._rows[index]
        if is_marker(text):
            style = base + self.get_component_rich_style("log-view--marker", partial=True)
            segments = [Segment(text, style)]
        elif self.pattern is not None:
            segments = self._highlighted(text, base)
        elif text.isascii():
            # The common row: one cell per character, so crop and pad it here (one strip).
            shown = text[scroll_x : scroll_x + width]
            return Strip([Segment(shown.ljust(width), base)], width)
        else:
            segments = [Segment(text, base)]
        strip = Strip(segments, _cells(text))
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _highlighted(self, text: str, base: Style) -> list[Segment]:
        assert self.pattern is not None
        match_style = base + self.get_component_rich_style("log-view--match", partial=True)
        segments: list[Segment] = []
        at = 0
        for found in self.pattern.finditer(text):
            start, end = found.span()
            if end == start:
                continue
            if start > at:
                segments.append(Segment(text[at:start], base))
            segments.append(Segment(text[start:end], match_style))
            at = end
        if at < len(text):
            segments.append(Segment(text[at:], base))
        return segments
