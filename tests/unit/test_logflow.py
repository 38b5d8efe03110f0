"""LogFlow: bounded batches with counted skips, and jumps to the present when the stream lags.

No timed assertions: every wait is on a condition, with a generous bound.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from containerlease_tui.logflow import LogBatch, LogFlow, SkipMarker, bound_lines, is_marker


async def _collect(flow: LogFlow, until: object, within: float = 20.0) -> list[LogBatch]:
    """Batches until ``until(batches)`` holds (then the flow is closed)."""
    got: list[LogBatch] = []

    async def run() -> None:
        async for batch in flow.batches(0.01):
            got.append(batch)
            if until(got):  # type: ignore[operator]
                return

    await asyncio.wait_for(run(), within)
    return got


def _entries(batches: list[LogBatch]) -> list[str]:
    return [line for batch in batches for line in batch.lines]


async def test_a_flood_is_cut_at_the_reader_and_every_skip_is_counted() -> None:
    total = 100_000

    async def stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
        for n in range(total):
            yield f"line {n}"  # never suspends: as if the socket buffer were always full

    flow = LogFlow(stream, burst=500, busy_lines=10**9)
    batches = await _collect(flow, lambda got: any("line 99999" in b.lines for b in got))
    entries = _entries(batches)
    kept = [line for line in entries if not is_marker(line)]
    markers = [line for line in entries if isinstance(line, SkipMarker)]
    assert markers, "a flood shows a skip marker"
    assert markers[0] == f"… {markers[0].skipped:,} lines skipped …"
    assert len(kept) + sum(m.skipped for m in markers) == total
    assert kept[-1] == "line 99999"
    assert all(len(b.lines) <= 501 for b in batches)  # the burst, plus its marker
    assert flow.skipped_total == sum(m.skipped for m in markers)


async def test_the_history_a_stream_opens_with_comes_whole() -> None:
    async def stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
        for n in range(int(tail)):
            yield f"old {n}"  # the backlog: all there at once

    flow = LogFlow(stream, tail=5_000, burst=500)
    batches = await _collect(flow, lambda got: any("old 4999" in b.lines for b in got))
    assert _entries(batches) == [f"old {n}" for n in range(5_000)]  # no marker, nothing cut


async def test_a_slow_stream_loses_nothing() -> None:
    async def stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
        for n in range(300):
            yield f"line {n}"
            await asyncio.sleep(0)

    flow = LogFlow(stream, burst=2_000)
    batches = await _collect(flow, lambda got: any("line 299" in b.lines for b in got))
    assert _entries(batches) == [f"line {n}" for n in range(300)]


async def test_lines_are_cleaned_as_they_are_handed_out() -> None:
    async def stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
        yield "\x1b[31mred\x1b[0m \x1b]0;title\x07text"

    flow = LogFlow(stream)
    batches = await _collect(flow, lambda got: bool(got))
    assert batches[0].lines == ["red text"]


class Producer:
    """A container printing ~a million lines a second: far faster than any reader."""

    def __init__(self) -> None:
        self.start = asyncio.get_running_loop().time()
        self.opened: list[tuple[int | str, bool]] = []

    def newest(self) -> int:
        return int((asyncio.get_running_loop().time() - self.start) * 1_000_000)

    async def logs(self, tail: int | str, follow: bool) -> AsyncIterator[str]:
        self.opened.append((tail, follow))
        if not follow:
            yield f"seq {self.newest()}"
            return
        first = max(0, self.newest() - int(tail)) if tail != "all" else 0
        for n in itertools.count(first):
            yield f"seq {n}"
            if n % 64 == 0:
                await asyncio.sleep(0)


async def test_a_stream_that_falls_behind_jumps_to_the_present() -> None:
    producer = Producer()
    flow = LogFlow(producer.logs, tail=0, probe_seconds=0.02, catch_up_seconds=0.05, busy_lines=10)
    target: list[int] = []

    def caught_up(got: list[LogBatch]) -> bool:
        if not target and any(b.jumped for b in got):
            target.append(producer.newest())  # the newest line produced at this moment
        kept = [int(x.split()[1]) for x in got[-1].lines if not is_marker(x)]
        return bool(target) and bool(kept) and kept[-1] >= target[0]

    batches = await _collect(flow, caught_up, within=60)
    jumps = [x for x in _entries(batches) if isinstance(x, SkipMarker) and x.jumped]
    assert jumps and ("jumped ahead" in jumps[0] or "skipped ahead" in jumps[0])
    assert flow.jumps >= 1
    assert (flow.jump_tail, True) in producer.opened  # reopened at the newest output
    assert any(follow is False and tail == 1 for tail, follow in producer.opened)  # the probe


async def test_a_failing_stream_ends_the_flow_with_its_error() -> None:
    async def stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
        yield "one"
        raise RuntimeError("container gone")

    flow = LogFlow(stream)
    batches = [batch async for batch in flow.batches(0.01)]
    assert _entries(batches) == ["one"]
    assert flow.error == "container gone"


def test_bounding_lines_counts_what_it_cuts_into_one_marker() -> None:
    lines = ["a", SkipMarker(5), "b", "c", SkipMarker(2, jumped=True), "d", "e"]
    bounded = bound_lines(lines, 3)
    assert bounded[1:] == ["d", "e"]
    marker = bounded[0]
    assert isinstance(marker, SkipMarker)
    assert (marker.skipped, marker.jumped) == (1 + 5 + 2 + 2, True)
    assert bound_lines(["x", "y"], 3) == ["x", "y"]


def test_markers_read_as_the_pane_shows_them() -> None:
    assert SkipMarker(184_322) == "… 184,322 lines skipped …"
    assert "jumped ahead" in SkipMarker(3, jumped=True)
    assert is_marker(SkipMarker(1)) and not is_marker("… 1 lines skipped …")
