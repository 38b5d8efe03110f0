"""A followed log under a flood: the pane marks what it skipped and keeps showing the present.

The container here prints about a million numbered lines a second (far faster than any reader),
so the follow stream falls behind at once; the pane must jump to the newest output, say so with
a marker, and keep going. Every wait is on a condition with a generous bound: the timing figures
(lag, key latency) are the benchmark's business (``benchmarks/log_flood.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from containerlease_tui.logflow import SkipMarker, is_marker
from containerlease_tui.models import Lease

from .fakes import FakeService
from .helpers import follow, loaded, record_toasts, screen_lines, settle

SIZE = (120, 36)
FLOODED = "k7m2x9qa"


class FloodService(FakeService):
    """The fake service, whose followed container prints ~1,000,000 lines/s forever."""

    RATE = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        self.started: float | None = None
        self.opened: list[tuple[int | str, bool]] = []

    def newest(self) -> int:
        """The sequence number of the newest line the container has printed."""
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        return int((loop.time() - self.started) * self.RATE)

    async def logs(  # type: ignore[override]
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        if lease.id != FLOODED:
            return
        self.opened.append((tail, follow))
        if not follow:
            yield f"seq {self.newest():09d} GET /api/v1/leases 200"
            return
        back = 0 if tail == "all" else int(tail)
        for n in itertools.count(max(0, self.newest() - back)):
            yield f"seq {n:09d} GET /api/v1/leases 200"
            if n % 64 == 0:
                await asyncio.sleep(0)  # a socket read now and then, as aiohttp does


def _newest_shown(view_lines: list[str]) -> int | None:
    for line in reversed(view_lines):
        if not is_marker(line):
            return int(line.split()[1])
    return None


async def test_a_flood_shows_the_skip_marker_and_the_newest_output() -> None:
    service = FloodService()
    from containerlease_tui.tui import create_app

    from .fakes import fixed_clock

    app = create_app(service.settings, service=service, reaper=False, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, FLOODED)
        logs = app.main.logs
        view = logs.view

        # The marker: the pane says that it skipped, in the view itself.
        await settle(
            pilot,
            lambda: any(isinstance(line, SkipMarker) for line in view.lines),
            within=30,
            what="a skip marker",
        )
        marker = next(line for line in view.lines if isinstance(line, SkipMarker))
        assert marker.startswith("… ") and marker.endswith(" …")
        assert logs.jumps >= 1 or logs.skipped > 0
        assert "skipping under load" in str(logs.query_one("#log-title").render())

        # The present: a line printed after this moment shows up (no timing asserted here).
        target = service.newest()
        await settle(
            pilot,
            lambda: (_newest_shown(list(view.lines)) or -1) >= target,
            within=30,
            what=f"line {target} (printed after the marker) in the view",
        )
        # And the marker is what the user sees, not only data: it is on screen or scrolled
        # past by newer output, and it is styled as a marker (never as container text).
        assert any("lines skipped" in x or "skipped ahead" in x for x in view.lines)
        assert len(view.lines) <= logs.max_lines
        assert len(logs.lines) <= logs.max_lines
        assert screen_lines(app)  # it renders


async def test_pause_and_save_under_a_flood_say_what_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    service = FloodService()
    from containerlease_tui.tui import create_app

    from .fakes import fixed_clock

    app = create_app(service.settings, service=service, reaper=False, clock=fixed_clock)
    toasts = record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, FLOODED)
        logs = app.main.logs
        await settle(pilot, lambda: logs.jumps >= 1 or logs.skipped > 0, within=30)

        await pilot.press("p")
        assert logs.paused
        shown = list(logs.view.lines)
        await settle(pilot, lambda: logs.unseen > 0, within=30, what="lines while paused")
        assert list(logs.view.lines) == shown  # nothing written while paused
        await pilot.press("p")
        assert not logs.paused

        await pilot.press("ctrl+s")
        saved = tmp_path / f"containerlease-{FLOODED}.log"
        await settle(pilot, lambda: any("Saved" in t for t, _ in toasts), within=30)
        toast = next(t for t, _ in toasts if "Saved" in t)
        assert "only what was kept" in toast
        text = saved.read_text().splitlines()
        assert any(line.startswith("… ") and line.endswith(" …") for line in text)
        assert len(text) <= logs.max_lines


async def test_the_view_renders_only_what_it_keeps_and_marks_the_gaps() -> None:
    from textual.app import App, ComposeResult

    from containerlease_tui.tui.widgets.log_view import LogView

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(id="v", max_lines=100)

    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LogView)
        view.write_lines([f"line {n}" for n in range(150)] + [SkipMarker(7), "tab\there"])
        await pilot.pause()
        assert len(view.lines) == 100  # the ring keeps the newest
        assert view.lines[-1] == "tab     here"  # tabs expanded: one character, one cell
        assert isinstance(view.lines[-2], SkipMarker)
        text = "\n".join(screen_lines(app))
        assert "… 7 lines skipped …" in text and "tab     here" in text  # followed to the end

        view.wrap = True
        view.write_lines(["x" * 100])
        await pilot.pause()
        assert view.row_count > len(view.lines)  # the long line wrapped into pieces
        assert "x" * 30 in "\n".join(screen_lines(app))
