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
  overrides become ``�``. Tabs are kept.

:func:`one_line` is :func:`clean` for a message that must stay on one line (error lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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


def clean_log_line(line: str) -> str:
    """One line of container output as plain text: escape sequences (colours, cursor moves,
    titles, clipboard writes, queries) and other controls dropped, bidi overrides made visible.

    Dropping cannot hide text: what lies between the sequences stays. Tabs are kept.
    """
    line = line.rstrip("\r\n")
    if not _UNSAFE.search(line):
        return line
    line = _SEQUENCE.sub("", line)

    def drop(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\t":
            return char
        return REPLACEMENT if ord(char) > 0x9F else ""

    return _UNSAFE.sub(drop, line)


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
