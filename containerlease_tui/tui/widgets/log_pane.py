"""The log pane: follows one lease's container output, with pause, filter, wrap, save and copy."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Input, Static

from containerlease_tui.logflow import BATCH_SECONDS, BURST, LogFlow, SkipMarker, is_marker
from containerlease_tui.models import Lease
from containerlease_tui.safefile import write_new
from containerlease_tui.sanitize import clean_log_line, one_line
from containerlease_tui.tui.keys import LOG_KEYS
from containerlease_tui.tui.messages import LogLines, LogSaved, LogStreamEnded
from containerlease_tui.tui.widgets.inputs import FilterInput
from containerlease_tui.tui.widgets.log_view import LogView

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

MAX_LINES = 10_000
"""Lines kept per lease; older ones drop."""

__all__ = ["BATCH_SECONDS", "BURST", "MAX_LINES", "LogPane", "clean_line", "compile_filter"]


def clean_line(line: str) -> str:
    """One line as text safe to show: every terminal control removed (C1 controls and bidi
    overrides too), its SGR colours kept as data (a
    :class:`~containerlease_tui.sanitize.StyledLine`; see
    :func:`containerlease_tui.sanitize.clean_log_line`)."""
    return clean_log_line(line, styles=True)


def compile_filter(text: str) -> re.Pattern[str] | None:
    """A case-insensitive regex, matched against each line on its own (``^`` and ``$`` are
    every line's start and end); text that is not a valid regex is matched literally."""
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE | re.MULTILINE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


class LogPane(Vertical):
    """Output of the selected lease's container, followed live in a worker.

    A :class:`~containerlease_tui.logflow.LogFlow` reads the stream: under a flood it drops the
    excess before it reaches the UI and jumps to the newest output when the stream itself falls
    behind; the gaps show as marker lines ("… 184,322 lines skipped …").
    """

    BINDINGS: ClassVar[list[BindingType]] = list(LOG_KEYS)

    lease: reactive[Lease | None] = reactive(None)
    paused: reactive[bool] = reactive(False)
    wrap: reactive[bool] = reactive(False)
    filter_text: reactive[str] = reactive("")
    ended: reactive[str | None] = reactive(None)
    """Why following stopped (None: still following)."""
    unseen: reactive[int] = reactive(0)
    """Lines that arrived while paused."""
    skipped: reactive[int] = reactive(0)
    """Lines of the followed output dropped under load (never kept)."""
    jumps: reactive[int] = reactive(0)
    """How often following jumped past output it could not read."""

    def __init__(self, *, id: str | None = None, max_lines: int = MAX_LINES) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._pattern: re.Pattern[str] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="log-title")
        yield FilterInput(
            id="log-filter",
            placeholder="filter: text or regex (enter: keep, esc: clear)",
            compact=True,
        )
        yield LogView(id="log-view", max_lines=self.max_lines)

    def on_mount(self) -> None:
        view = self.view
        self.watch(view, "following", self._on_following, init=False)
        self.watch(view, "scroll_y", self._on_scrolled, init=False)

    def _on_following(self) -> None:
        self._title()
        self.refresh_bindings()  # the footer shows G Follow while scrolled back

    def _on_scrolled(self) -> None:
        if not self.view.following:
            self._title()  # "scrolled back to line N"

    @property
    def view(self) -> LogView:
        """The bounded log view."""
        return self.query_one("#log-view", LogView)

    # --- following -------------------------------------------------------------------------

    def follow(self, service: LeaseService, lease: Lease) -> None:
        """Show ``lease``'s output, following it; replaces whatever was followed before."""
        self.lines.clear()
        self.view.clear()
        self.unseen = 0
        self.skipped = 0
        self.jumps = 0
        self.ended = None
        self.lease = lease
        if lease.docker_id:
            self._stream(service, lease)
        else:
            self.stop()  # nothing to read yet: the app follows again once the container exists

    def stop(self) -> None:
        """Stop following (the lease is gone)."""
        self.workers.cancel_group(self, "logs")

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def _stream(self, service: LeaseService, lease: Lease) -> None:
        def open_stream(tail: int | str, follow: bool) -> AsyncIterator[str]:
            return service.logs(lease, follow=follow, tail=tail)

        flow = LogFlow(open_stream, tail=self.max_lines, clean=clean_line)
        async for batch in flow.batches(BATCH_SECONDS):
            self.post_message(LogLines(lease.id, batch.lines))
        self.post_message(LogStreamEnded(lease.id, flow.error))

    @on(LogLines)
    def _on_lines(self, message: LogLines) -> None:
        message.stop()
        if self.lease is None or message.lease_id != self.lease.id or not self.is_attached:
            return
        lines = message.lines
        self.lines.extend(lines)
        markers = [line for line in lines if isinstance(line, SkipMarker)]
        if markers:
            self.skipped += sum(marker.skipped for marker in markers)
            self.jumps += sum(marker.jumped for marker in markers)
        if self.paused:
            self.unseen += len(lines) - len(markers)
            return
        self._write(lines)
        if not self.view.following:
            self._title()  # "… of N": N grows below the rows being read

    @on(LogStreamEnded)
    def _on_ended(self, message: LogStreamEnded) -> None:
        message.stop()
        if self.lease is not None and message.lease_id == self.lease.id:
            self.ended = message.error or "the container's output ended"

    # --- rendering -------------------------------------------------------------------------

    def _matching(self, lines: list[str] | deque[str]) -> list[str]:
        """The lines the filter lets through; skip markers always pass."""
        if self._pattern is None:
            return list(lines)
        search = self._pattern.search
        return [line for line in lines if is_marker(line) or search(line)]

    def _write(self, lines: list[str]) -> None:
        self.view.write_lines(self._matching(lines))

    def _rerender(self) -> None:
        view = self.view
        view.pattern = self._pattern
        view.wrap = self.wrap
        view.set_lines(self._matching(self.lines))

    def _title(self) -> None:
        if self.lease is None:
            title = "[b]Logs[/b] [dim]— select a lease and press l or enter[/]"
            self.query_one("#log-title", Static).update(Content.from_markup(title))
            return
        parts = []
        if not self.lease.docker_id and self.lease.status.is_active:
            parts.append("[$warning]waiting for its container[/]")
        elif self.ended is not None:
            parts.append("[$warning]ended[/]: $ended")
        elif self.paused:
            parts.append(f"[$warning]paused[/] ({self.unseen} new, p resumes)")
        elif self.view.following:
            parts.append("[$success]following[/]")
        view = self.view
        if not view.following:
            parts.append(
                f"[$warning]scrolled back[/] to line {view.top_line + 1:,} of "
                f"{view.line_count:,} (G follows)"
            )
        if self.skipped or self.jumps:
            parts.append("[$warning]skipping under load[/]")
        if self.filter_text:
            parts.append("filter [b]$filter[/b]")
        if self.wrap:
            parts.append("wrap")
        self.query_one("#log-title", Static).update(
            Content.from_markup(
                "[b]Logs[/b] $name [dim]$id[/] · " + " · ".join(parts),
                name=one_line(self.lease.name),
                id=one_line(self.lease.id),
                ended=one_line(self.ended or ""),
                filter=one_line(self.filter_text),
            )
        )

    def watch_lease(self) -> None:
        self._title()

    def watch_ended(self) -> None:
        self._title()

    def watch_unseen(self) -> None:
        self._title()

    def watch_skipped(self, before: int, after: int) -> None:
        if not before or not after:
            self._title()

    def watch_jumps(self, before: int, after: int) -> None:
        if not before or not after:
            self._title()

    def watch_paused(self, paused: bool) -> None:
        if not paused and self.is_mounted:
            self.unseen = 0
            self._rerender()
        self._title()
        self.refresh_bindings()  # the footer reads Pause or Resume

    def watch_wrap(self) -> None:
        if self.is_mounted:
            self._rerender()
        self._title()

    def watch_filter_text(self, text: str) -> None:
        self._pattern = compile_filter(text)
        if self.is_mounted:
            self._rerender()
        self._title()

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``p`` is Pause while following and Resume while paused (one of them shows)."""
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        if action == "follow":
            return not self.view.following
        return True

    def action_toggle_pause(self) -> None:
        """Pause or resume following (lines keep arriving into the buffer)."""
        self.paused = not self.paused

    def action_pause(self) -> None:
        """Stop writing new lines to the view (they keep arriving into the buffer)."""
        self.paused = True

    def action_resume(self) -> None:
        """Show what arrived while paused and follow again."""
        self.paused = False

    def action_follow(self) -> None:
        """Follow again: jump to the newest line and keep it in sight (``G``, end)."""
        self.view.follow()

    def action_back_line(self) -> None:
        """Scroll back one line (leaves follow mode until ``G``)."""
        self.view.action_scroll_up()

    def action_forward_line(self) -> None:
        """Scroll down one line (still scrolled back: ``G`` follows)."""
        self.view.action_scroll_down()

    def action_top(self) -> None:
        """The oldest kept line (leaves follow mode until ``G``)."""
        self.view.action_scroll_home()

    def action_toggle_wrap(self) -> None:
        """Wrap long lines, or scroll sideways."""
        self.wrap = not self.wrap

    def action_filter(self) -> None:
        """Show only matching lines (text or regex), highlighting the matches."""
        filt = self.query_one("#log-filter", Input)
        filt.add_class("-visible")
        filt.focus()

    @on(Input.Changed, "#log-filter")
    def _on_filter(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value

    @on(Input.Submitted, "#log-filter")
    def _on_filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            event.input.remove_class("-visible")
        self.view.focus()

    @on(FilterInput.Cleared, "#log-filter")
    def _on_filter_cleared(self, event: FilterInput.Cleared) -> None:
        event.stop()
        event.input.remove_class("-visible")
        self.view.focus()

    def save_path(self) -> Path | None:
        """Where ``ctrl+s`` writes first: ./containerlease-<id>.log (taken: ``-1``, ``-2`` …)."""
        if self.lease is None:
            return None
        return Path.cwd() / f"containerlease-{self.lease.id}.log"

    def action_save(self) -> None:
        """Write the shown (filtered) lines, as copy takes them, to a new
        ./containerlease-<id>.log (in a thread); an existing file is never touched."""
        path = self.save_path()
        if path is None:
            self.notify("No lease selected: nothing to save", severity="warning", markup=False)
            return
        self._write_file(path, self._matching(self.lines), self.filter_text)

    @work(thread=True, group="save", exit_on_error=False)
    def _write_file(self, path: Path, shown: list[str], filter_text: str) -> None:
        """The file write, off the UI loop; the outcome comes back as :class:`LogSaved`.

        The folder may be shared (``/tmp``, a project folder): a name planted there, a symlink
        to the user's files for one, is skipped, never followed (:func:`write_new`).
        """
        data = "".join(f"{line}\n" for line in shown).encode("utf-8", errors="replace")
        lines = sum(not is_marker(line) for line in shown)
        gaps = [line for line in shown if isinstance(line, SkipMarker)]
        skipped = sum(marker.skipped for marker in gaps)
        jumped = any(marker.jumped for marker in gaps)
        try:
            written = write_new(path.parent, path.stem, path.suffix, data)
        except OSError as exc:
            error = exc.strerror or str(exc)
            self.post_message(LogSaved(path, lines, error, filter_text))
            return
        self.post_message(
            LogSaved(written, lines, filter=filter_text, skipped=skipped, jumped=jumped)
        )

    @on(LogSaved)
    def _on_saved(self, message: LogSaved) -> None:
        message.stop()
        if message.error is not None:
            self.notify(
                f"Could not save {message.path}: {message.error}", severity="error", markup=False
            )
            return
        which = f"matching {message.filter!r}" if message.filter else "all buffered"
        gap = ""
        if message.skipped or message.jumped:
            gap = " — only what was kept: "
            if message.skipped:
                gap += f"{message.skipped:,} lines skipped under load are not in it"
                if message.jumped:
                    gap += ", nor the output jumped over"
            else:
                gap += "the output jumped over under load is not in it"
            gap += " (marked in the file)"
        self.notify(
            f"Saved {message.lines} lines ({which}) to {message.path}{gap}",
            title="Log saved",
            markup=False,
        )

    def action_copy(self) -> None:
        """Copy the shown (filtered) lines to the clipboard (OSC 52)."""
        shown = self._matching(self.lines)
        if not shown:
            self.notify("Nothing to copy", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard("\n".join(shown))
        count = sum(not is_marker(line) for line in shown)
        self.notify(f"Copied {count} lines to the clipboard", markup=False)

    def focus_view(self) -> None:
        """Focus the log view, so the pane's keys apply."""
        self.view.focus()
