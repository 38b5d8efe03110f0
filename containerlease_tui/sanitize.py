"""Untrusted text made safe for a terminal (pure: no Textual here).

Text from a container, a Redis record, a registry, the engine or the environment may hold terminal
controls: OSC 52 writes the reader's clipboard, OSC 0/2 sets the window title, DCS and CSI
queries make the terminal type answers into the reader's input, CSI moves the cursor to paint
over what is shown, bidi overrides reorder what is read. A terminal acts on the 7-bit forms
(``ESC [``) and, in many configurations, on the C1 code points too (U+009B is a CSI), so every one
of them must go before text is written.

Two treatments:

* :func:`clean` for names, ids, errors and every other field: each control is *replaced* by a
  visible stand-in (``ESC`` → ``^[``, ``BEL`` → ``^G``, ``DEL`` → ``^?``, a C1 control, a bidi
  override or a lone surrogate → ``�``), so a forged value shows what it holds instead of hiding
  it. Tabs are kept unless ``tabs=False``; newlines only with ``newlines=True``.
* :func:`clean_log_line` for container output, where colours and cursor codes are routine: whole
  escape sequences are dropped (the text between them stays), other controls are dropped, bidi
  overrides become ``�``. Tabs are kept. With ``styles=True`` the colours survive as *data*: the
  SGR colour and style codes among the dropped sequences are parsed into :class:`SgrStyle` spans
  over the cleaned text (a :class:`StyledLine`); the log view paints those spans itself, and no
  escape sequence ever reaches the terminal. Everything else (cursor moves, titles, clipboard
  writes, queries, conceal, blink) is dropped exactly as without styles.

:func:`one_line` is :func:`clean` for a message that must stay on one line (error lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

REPLACEMENT: Final = "\ufffd"
"""What stands in for a control that has no caret form (C1, bidi, lone surrogates)."""

# C0 controls, DEL, C1 controls, bidi embeddings/overrides (U+202A-202E) and isolates
# (U+2066-2069), and lone surrogates (from surrogateescape-decoded bytes: not encodable).
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# One escape sequence, 7-bit or 8-bit (ECMA-48):
# * CSI: ESC [ or U+009B, parameter bytes 0x30-0x3F, intermediates 0x20-0x2F, a final 0x40-0x7E;
# * a control string: OSC (ESC ] / U+009D), DCS (ESC P / U+0090), SOS (ESC X / U+0098),
#   PM (ESC ^ / U+009E), APC (ESC _ / U+009F), up to BEL or ST (ESC \ / U+009C), or to the end of
#   the line when unterminated (a terminal would swallow as much);
# * any other ESC with its intermediates and final byte (ESC c, ESC 7, ESC ( B, …), or a lone
#   ESC at the end.
_SEQUENCE: Final = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)


def _visible(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC → ^[, BEL → ^G, NUL → ^@
    if code == 0x7F:
        return "^?"
    return REPLACEMENT


def _replace(match: re.Match[str]) -> str:
    return _visible(match.group())


def clean(text: str, *, newlines: bool = False, tabs: bool = True) -> str:
    """``text`` with every terminal control replaced by a visible stand-in.

    ``tabs``: keep ``\\t`` (False in table cells, where a tab breaks the columns);
    ``newlines``: keep ``\\n`` (only where a multi-line value is intended).
    """
    if not _UNSAFE.search(text):
        return text  # the common case, and a cheap one
    keep = ("\t" if tabs else "") + ("\n" if newlines else "")

    def swap(match: re.Match[str]) -> str:
        char = match.group()
        return char if char in keep else _visible(char)

    return _UNSAFE.sub(swap, text)


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` as one safe line: runs of whitespace (newlines too) become one space, every
    other control a visible stand-in; cut to ``limit`` characters (with ``…``) if given."""
    flat = " ".join(text.split())
    if limit is not None and len(flat) > limit:
        flat = flat[: max(limit - 1, 0)] + "…"
    return clean(flat, tabs=False)


def _drop(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\t":
        return char
    return REPLACEMENT if ord(char) > 0x9F else ""


def _plain(text: str) -> str:
    """``text`` (holding no escape sequence) with its other controls dropped."""
    return _UNSAFE.sub(_drop, text)


def clean_log_line(line: str, *, styles: bool = False) -> str:
    """One line of container output as plain text: escape sequences (colours, cursor moves,
    titles, clipboard writes, queries) and other controls dropped, bidi overrides made visible.

    Dropping cannot hide text: what lies between the sequences stays. Tabs are kept.

    ``styles``: keep the colours as data. A line that had SGR colour/style codes comes back as a
    :class:`StyledLine` (the same cleaned text, with :attr:`StyledLine.spans`); the codes
    themselves are dropped like every other sequence.
    """
    line = line.rstrip("\r\n")
    if not _UNSAFE.search(line):
        return line
    if not styles or "\x1b[" not in line:
        return _plain(_SEQUENCE.sub("", line))
    out: list[str] = []
    spans: list[tuple[int, int, SgrStyle]] = []
    at = 0  # cleaned characters so far
    style = _NO_STYLE
    start = 0
    for found in _SEQUENCE.finditer(line):
        piece = _plain(line[start : found.start()])
        if piece:
            out.append(piece)
            if style != _NO_STYLE:
                _add_span(spans, at, at + len(piece), style)
            at += len(piece)
        start = found.end()
        sgr = _SGR.fullmatch(found.group())
        if sgr is not None:
            style = style.apply(sgr.group(1))
    piece = _plain(line[start:])
    if piece:
        out.append(piece)
        if style != _NO_STYLE:
            _add_span(spans, at, at + len(piece), style)
    text = "".join(out)
    return StyledLine(text, tuple(spans)) if spans else text


Colour = int | tuple[int, int, int]
"""A palette colour (0-255: 0-7 standard, 8-15 bright) or a 24-bit ``(r, g, b)``."""


@dataclass(frozen=True, slots=True)
class SgrStyle:
    """The colours and text styles an SGR sequence may set (data, never a sequence again).

    Only what changes how text looks without hiding it: conceal (SGR 8) and blink are ignored.
    """

    fg: Colour | None = None
    bg: Colour | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False
    strike: bool = False

    def apply(self, params: str) -> SgrStyle:
        """This style after ``ESC [ params m`` (``params``: digits, ``;`` and ``:``)."""
        codes = params.replace(":", ";").split(";") if params else ["0"]
        if len(codes) > _MAX_SGR_PARAMS:
            return self  # nothing a colour needs: ignore it whole
        values = [int(code) if code else 0 for code in codes]
        fields = {
            "fg": self.fg,
            "bg": self.bg,
            "bold": self.bold,
            "dim": self.dim,
            "italic": self.italic,
            "underline": self.underline,
            "reverse": self.reverse,
            "strike": self.strike,
        }
        i = 0
        while i < len(values):
            code = values[i]
            i += 1
            if code == 0:
                fields = dict.fromkeys(fields, False) | {"fg": None, "bg": None}
            elif code in _SGR_ON:
                fields[_SGR_ON[code]] = True
            elif code in _SGR_OFF:
                for name in _SGR_OFF[code]:
                    fields[name] = False
            elif 30 <= code <= 37 or 90 <= code <= 97:
                fields["fg"] = code - 30 if code < 90 else code - 82
            elif 40 <= code <= 47 or 100 <= code <= 107:
                fields["bg"] = code - 40 if code < 100 else code - 92
            elif code == 39:
                fields["fg"] = None
            elif code == 49:
                fields["bg"] = None
            elif code in (38, 48):
                colour, i = _extended_colour(values, i)
                if colour is not None:
                    fields["fg" if code == 38 else "bg"] = colour
        return SgrStyle(**fields)  # type: ignore[arg-type]


_NO_STYLE: Final = SgrStyle()
_MAX_SGR_PARAMS: Final = 32
_SGR: Final = re.compile(r"\x1b\[([0-9;:]{0,96})m")
"""An SGR sequence (7-bit only) whose parameters are plain numbers: the one kind kept as data."""
_SGR_ON: Final = {1: "bold", 2: "dim", 3: "italic", 4: "underline", 7: "reverse", 9: "strike"}
_SGR_OFF: Final = {
    21: ("bold",),  # double underline on some terminals, "bold off" on others: off is safe
    22: ("bold", "dim"),
    23: ("italic",),
    24: ("underline",),
    27: ("reverse",),
    29: ("strike",),
}


def _extended_colour(values: list[int], i: int) -> tuple[Colour | None, int]:
    """The colour after a 38/48 at ``values[i:]`` (``5;n`` or ``2;r;g;b``), and where the
    parameters go on."""
    if i < len(values) and values[i] == 5 and i + 1 < len(values):
        n = values[i + 1]
        return (n if 0 <= n <= 255 else None), i + 2
    if i < len(values) and values[i] == 2 and i + 3 < len(values):
        rgb = values[i + 1 : i + 4]
        if all(0 <= v <= 255 for v in rgb):
            return (rgb[0], rgb[1], rgb[2]), i + 4
        return None, i + 4
    return None, len(values)  # malformed: the rest of the sequence means nothing


def _add_span(
    spans: list[tuple[int, int, SgrStyle]], start: int, end: int, style: SgrStyle
) -> None:
    if spans and spans[-1][1] == start and spans[-1][2] == style:
        spans[-1] = (spans[-1][0], end, style)
    else:
        spans.append((start, end, style))


class StyledLine(str):
    """A cleaned log line (the ``str`` itself: filters, copy and save see only the text) with
    the colours its SGR codes gave it: ``spans`` of ``(start, end, style)`` over the text,
    sorted and not overlapping."""

    spans: tuple[tuple[int, int, SgrStyle], ...]

    def __new__(cls, text: str, spans: tuple[tuple[int, int, SgrStyle], ...]) -> StyledLine:
        line = super().__new__(cls, text)
        line.spans = spans
        return line

    def __reduce__(self) -> tuple[object, ...]:
        return (StyledLine, (str(self), self.spans))

    def expandtabs(self, tabsize: int = 8) -> StyledLine:  # type: ignore[override]
        """Tabs expanded as :meth:`str.expandtabs` does, the spans moved with the text."""
        if "\t" not in self:
            return self
        where: list[int] = []  # where each character of the text lands
        column = 0
        out: list[str] = []
        for char in str(self):
            where.append(column)
            if char == "\t":
                pad = tabsize - column % tabsize if tabsize > 0 else 0
                out.append(" " * pad)
                column += pad
            else:
                out.append(char)
                column += 1
        where.append(column)
        spans = tuple((where[a], where[b], style) for a, b, style in self.spans)
        return StyledLine("".join(out), spans)


_JSON_UNSAFE: Final = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_line(value: object, *, default: Callable[[object], object] | None = None) -> str:
    """``value`` as one line of JSON that is safe on a terminal, readable UTF-8 otherwise.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 controls but writes DEL, the C1 controls
    and bidi overrides as they are; those are escaped here too (``\\u009b``), so the JSON means
    the same and a terminal showing it acts on nothing.
    """
    text = json.dumps(value, default=default, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def is_clean(text: str, *, newlines: bool = False, tabs: bool = True) -> bool:
    """True when :func:`clean` would leave ``text`` as it is."""
    return clean(text, newlines=newlines, tabs=tabs) == text
