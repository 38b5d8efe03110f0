"""Following a log without falling behind: bounded batches, dropped excess, jumps to the present.

Core (no Textual): the log pane runs a :class:`LogFlow` over the service's log iterator and shows
the :class:`LogBatch` es it hands out. Three things keep what the pane shows current however fast
a container prints:

* **Bounded pending lines.** A batch holds at most ``burst`` lines (once the history the stream
  opens with, ``tail`` lines, has been handed out whole); older ones are dropped before they
  reach the UI (never cleaned, never posted) and counted, so the batch says exactly how many it
  skipped.
* **A reader that yields.** The engine's iterator does not suspend while its socket buffer holds
  data, so under a flood it would hold the event loop for as long as the flood lasts; the reader
  works in slices of :data:`SLICE_SECONDS` and rests in between, leaving the loop to keys and
  repaints.
* **Jumps to the present.** A container can print faster than any reader can parse (200,000
  lines/s and more); then the stream itself falls behind. While lines flow fast, a prober asks
  for the newest line (``tail=1``, no follow) every :data:`PROBE_SECONDS`; if the reader has not
  reached it :data:`CATCH_UP_SECONDS` later (and was busy reading a full stream meanwhile), the
  reader drops its stream and reopens it at the newest output (``tail=jump_tail``). What lay in
  between was never read, so the batch can only say that it jumped, not how many lines it
  passed.

Skips travel with the lines as :class:`SkipMarker` entries (a ``str`` whose text is the marker
the pane shows), so coalescing batches and bounded buffers keep them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from containerlease_tui.sanitize import clean_log_line

OpenStream = Callable[[int | str, bool], AsyncIterator[str]]
"""``open(tail, follow)``: the container's output as lines (``LeaseService.logs`` bound to one
lease)."""

BURST = 2_000
"""Lines one batch holds at most (older pending ones are skipped and counted)."""
BATCH_SECONDS = 0.1
"""How long a batch gathers lines (the pane repaints at most this often for new output)."""
SLICE_SECONDS = 0.004
"""How long the reader reads a full stream before it lets the event loop run other work."""
REST_SECONDS = 0.012
"""How long the reader rests after a slice that found the stream still full (it reads at
most a quarter of the time: under a flood the jumps, not the reading, keep the pane current)."""
PROBE_SECONDS = 0.15
"""How often the prober asks for the newest line while lines flow fast."""
CATCH_UP_SECONDS = 0.3
"""How long the reader has to reach a probed line before it jumps to the present."""
CATCH_UP_BUSY_SECONDS = 0.05
"""…and how long it must have spent reading a full stream meanwhile: a reader that was merely
kept off the event loop for a while (a slow repaint, a busy machine) catches up by itself, so a
wall-clock deadline alone would jump past lines it could have read."""
BUSY_LINES = 300
"""Lines per probe interval below which nobody probes (the reader keeps up by far)."""
JUMP_TAIL = 200
"""Lines the reopened stream starts with after a jump."""
RECENT = 4_096
"""Raw lines remembered to tell whether a probed line was already read."""
_CHECK_EVERY = 128
"""Lines between two looks at the clock in the reader."""
FULL_RATE = 10_000
"""Lines/s above which a chunk counts as read from a full stream (they were waiting)."""


class SkipMarker(str):
    """A gap in the output: ``skipped`` lines dropped, and/or a jump past unread output."""

    skipped: int
    jumped: bool

    def __new__(cls, skipped: int, jumped: bool = False) -> SkipMarker:
        if jumped and skipped:
            text = f"… {skipped:,} lines skipped, then jumped ahead to the newest output …"
        elif jumped:
            text = "… skipped ahead to the newest output (lines in between were not read) …"
        else:
            text = f"… {skipped:,} lines skipped …"
        marker = super().__new__(cls, text)
        marker.skipped = skipped
        marker.jumped = jumped
        return marker

    def __reduce__(self) -> tuple[object, ...]:
        return (SkipMarker, (self.skipped, self.jumped))


def is_marker(line: str) -> bool:
    """Whether ``line`` is a :class:`SkipMarker` (not container output)."""
    return isinstance(line, SkipMarker)


def merge_markers(first: SkipMarker | None, second: SkipMarker) -> SkipMarker:
    """One marker standing for two adjacent gaps."""
    if first is None:
        return second
    return SkipMarker(first.skipped + second.skipped, first.jumped or second.jumped)


def bound_lines(lines: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` entries, the newest; what is cut is counted into a leading marker
    (together with any markers among the cut entries), so no gap goes unreported."""
    if len(lines) <= limit:
        return list(lines)
    cut = len(lines) - limit + 1  # one slot for the marker
    dropped = lines[:cut]
    marker = SkipMarker(0)
    for line in dropped:
        if isinstance(line, SkipMarker):
            marker = merge_markers(marker, line)
        else:
            marker = merge_markers(marker, SkipMarker(1))
    rest = list(lines[cut:])
    head = rest[0] if rest else None
    if isinstance(head, SkipMarker):
        marker = merge_markers(marker, head)
        del rest[0]
    return [marker, *rest]


@dataclass
class LogBatch:
    """Lines to show, oldest first, with :class:`SkipMarker` entries where lines were skipped."""

    lines: list[str] = field(default_factory=list)
    skipped: int = 0
    """Lines dropped (counted) in front of or among these."""
    jumped: bool = False
    """Whether the reader jumped past unread output."""


class LogFlow:
    """Reads ``open_stream`` in the background and hands out bounded, current batches."""

    def __init__(
        self,
        open_stream: OpenStream,
        *,
        tail: int | str = "all",
        burst: int = BURST,
        jump_tail: int = JUMP_TAIL,
        clean: Callable[[str], str] = clean_log_line,
        clock: Callable[[], float] = time.monotonic,
        slice_seconds: float = SLICE_SECONDS,
        rest_seconds: float = REST_SECONDS,
        probe_seconds: float = PROBE_SECONDS,
        catch_up_seconds: float = CATCH_UP_SECONDS,
        busy_lines: int = BUSY_LINES,
        catch_up_busy_seconds: float = CATCH_UP_BUSY_SECONDS,
    ) -> None:
        self._open = open_stream
        self._tail = tail
        self.burst = max(1, burst)
        self.jump_tail = jump_tail
        self._clean = clean
        self._clock = clock
        self._slice = slice_seconds
        self._rest = rest_seconds
        self._probe_every = probe_seconds
        self._catch_up = catch_up_seconds
        self._busy_lines = busy_lines
        self._history = tail if isinstance(tail, int) else 0
        """Lines of history the stream opens with: those may come in one batch."""
        self._limit = max(self.burst, self._history)
        self._pending: deque[str] = deque(maxlen=self._limit)
        self._handed = 0
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._skipped = 0
        self._jumped = False
        self._watched: dict[str, tuple[float, float]] = {}
        """Probed newest lines not read yet → (wall-clock deadline, reader busy time then)."""
        self._busy = 0.0
        """Seconds the reader spent reading a stream that was full (lines waiting)."""
        self._catch_up_busy = catch_up_busy_seconds
        self._wake = asyncio.Event()
        self._done = False
        self.error: str | None = None
        """Why the stream failed (None: it ended, or is still going)."""
        self.received = 0
        """Lines read from the stream (shown or skipped)."""
        self.skipped_total = 0
        """Lines read and dropped, over the whole flow."""
        self.jumps = 0
        """How often the reader jumped to the present."""

    # --- the reader --------------------------------------------------------------------------

    async def _read(self) -> None:
        tail = self._tail
        try:
            while True:
                self._watched.clear()
                stream = self._open(tail, True)
                jumped = await self._read_stream(stream)
                if not jumped:
                    return
                self.jumps += 1
                self._jumped = True
                self._wake.set()
                tail = self.jump_tail
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
        finally:
            self._done = True
            self._wake.set()

    async def _read_stream(self, stream: AsyncIterator[str]) -> bool:
        """Read one stream to its end (False) or until it is too far behind (True)."""
        pending = self._pending
        recent = self._recent
        limit = self._limit
        clock = self._clock
        wake = self._wake
        watched = self._watched
        full = _CHECK_EVERY / FULL_RATE
        count = 0
        busy_slice = 0.0
        chunk = clock()
        try:
            async for line in stream:
                if len(pending) == limit:
                    self._skipped += 1
                pending.append(line)
                recent.append(line)
                if watched and line in watched:
                    self._reached(line)
                count += 1
                if count < _CHECK_EVERY:
                    if not wake.is_set():
                        wake.set()
                    continue
                self.received += count
                count = 0
                wake.set()
                now = clock()
                if now - chunk < full:  # these lines were all waiting: a full stream
                    self._busy += now - chunk
                    busy_slice += now - chunk
                if watched and self._overdue(now):
                    return True
                if busy_slice >= self._slice:
                    await asyncio.sleep(self._rest)  # a full stream: let keys and repaints run
                    busy_slice = 0.0
                chunk = clock()
            return False
        finally:
            self.received += count
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _reached(self, line: str) -> None:
        """The reader read probed line ``line``: it and every older probe are done."""
        for key in list(self._watched):
            del self._watched[key]
            if key == line:
                return

    def _overdue(self, now: float) -> bool:
        """Whether the oldest probed line is still unread past its deadline, after the reader
        spent long enough on a full stream: the stream lags, jump."""
        deadline, busy = next(iter(self._watched.values()))
        return now >= deadline and self._busy - busy >= self._catch_up_busy

    # --- the prober --------------------------------------------------------------------------

    async def _newest(self) -> str | None:
        newest: str | None = None
        stream = self._open(1, False)
        try:
            async for line in stream:
                newest = line
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        return newest

    async def _probe(self) -> None:
        last = self.received
        while not self._done:
            await asyncio.sleep(self._probe_every)
            if self.received - last < self._busy_lines:
                last = self.received
                continue
            last = self.received
            try:
                newest = await self._newest()
            except asyncio.CancelledError:
                raise
            except Exception:
                newest = None  # the reader will see the failure itself
            if newest is None or newest in self._recent or newest in self._watched:
                continue
            self._watched[newest] = (self._clock() + self._catch_up, self._busy)

    # --- batches -----------------------------------------------------------------------------

    def take(self) -> LogBatch:
        """What arrived since the last call: cleaned lines, a marker in front for any skip."""
        raw = list(self._pending)
        self._pending.clear()
        allowed = max(self.burst, self._history - self._handed)  # the history comes whole
        if len(raw) > allowed:
            self._skipped += len(raw) - allowed
            raw = raw[-allowed:]
        self._handed += len(raw)
        skipped, jumped = self._skipped, self._jumped
        self._skipped, self._jumped = 0, False
        self.skipped_total += skipped
        clean = self._clean
        lines: list[str] = [clean(line) for line in raw]
        if skipped or jumped:
            lines.insert(0, SkipMarker(skipped, jumped))
        return LogBatch(lines, skipped, jumped)

    async def batches(self, interval: float = BATCH_SECONDS) -> AsyncIterator[LogBatch]:
        """Batches until the stream ends (then :attr:`error` says whether it failed)."""
        reader = asyncio.create_task(self._read())
        prober = asyncio.create_task(self._probe())
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._done:
                    await asyncio.sleep(interval)  # gather a burst into one batch
                batch = self.take()
                if batch.lines:
                    yield batch
                if self._done and not self._pending:
                    return
        finally:
            for task in (prober, reader):
                task.cancel()
            for task in (prober, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
