"""The reaper's logger and its JSON line format (one object per line, for ``--reaper``)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Final

from containerlease_tui.sanitize import json_line

LOGGER_NAME: Final = "containerlease_tui.reaper"
# A library logger stays silent unless the application configures logging (the TUI owns the
# terminal: Python's last-resort stderr handler would scribble over the screen).
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())

_RECORD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def short(cid: str) -> str:
    """A container id as Docker's CLI shows it."""
    return cid[:12]


def one_line(exc: BaseException) -> str:
    """An error as one bounded log field (its type name when it has no message)."""
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:300]


def crash_text(exc: BaseException) -> str:
    """An unexpected error (a bug) as one log field, type name first."""
    return f"{type(exc).__name__}: {one_line(exc)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``msg`` and the record's ``extra`` fields.

    Callers pass only non-secret fields (lease, owner, container, action, error, counts…); URLs
    go through :func:`~containerlease_tui.config.redact_url` before they get here.
    """

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[1] is not None and "error" not in out:
            out["error"] = one_line(record.exc_info[1])
        # Not json.dumps alone: it passes C1 controls and bidi overrides from records through.
        return json_line(out, default=str)


def json_handler() -> logging.Handler:
    """A stderr handler writing :class:`JsonFormatter` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler
