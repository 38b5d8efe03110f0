"""The footprint reference: a bare Textual app showing the same lease rows with a 1 s clock.

``python -m benchmarks.footprint_bare ROWS.json``: a ``DataTable`` with the app's seven columns
and the rows as plain strings, a one-line clock under it updated every second, and the
time-left cells updated (only where their text changed) on the same tick. It imports Textual
and the standard library only, so its start-up and memory are what any Textual app pays.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

COLUMNS = ("Lease", "Status", "Time left", "Cost now/est.", "Image", "Owner", "Container")


def left(seconds: float) -> str:
    """Whole minutes from an hour on, seconds below it (as the app rounds)."""
    total = max(0, int(seconds))
    if total >= 3600:
        return f"{total // 3600} h {total % 3600 // 60} min"
    return f"{total // 60} min {total % 60} s"


class BareApp(App[None]):
    """A DataTable and a clock."""

    CSS = "DataTable { height: 1fr; } #clock { height: 1; }"

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows
        self.shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Static(id="clock")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label)
        now = time.time()
        for row in self.rows:
            text = left(row["expires"] - now)
            self.shown[row["id"]] = text
            table.add_row(
                row["name"],
                "running",
                text,
                row["cost"],
                "busybox",
                row["owner"],
                row["container"],
                key=row["id"],
            )
        self.tick()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        now = time.time()
        table = self.query_one(DataTable)
        for row in self.rows:
            text = left(row["expires"] - now)
            if self.shown[row["id"]] != text:
                self.shown[row["id"]] = text
                table.update_cell(row["id"], "Time left", text)
        clock = datetime.now(UTC).strftime("%H:%M:%S UTC")
        self.query_one("#clock", Static).update(clock, layout=False)  # same width every second


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        BareApp(json.load(fh)).run()
