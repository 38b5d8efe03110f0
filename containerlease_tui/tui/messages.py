"""Messages workers post to the UI.

Workers do the I/O and only post these; ``@on`` handlers own the state. Messages that carry the
latest snapshot of something (``can_replace``) supersede older queued ones, so a burst of updates
costs one repaint; log lines coalesce without loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message
from textual.notifications import SeverityLevel

from containerlease_tui.logflow import bound_lines
from containerlease_tui.models import Lease, LeaseEvent

if TYPE_CHECKING:
    from containerlease_tui.leases import (
        ContainerState,
        ImageRow,
        PullProgress,
        ReaperStatus,
    )
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

MAX_COALESCED_LINES = 10_000


@dataclass(eq=False)
class ServiceReady(Message):
    """The lease service is open (its connections are made lazily, by the first calls)."""

    service: LeaseService


@dataclass(eq=False)
class ServiceFailed(Message):
    """The service could not be opened; the worker retries with backoff."""

    error: str


@dataclass(eq=False)
class HealthChanged(Message):
    """The latest health check of Redis, Docker and the reapers."""

    redis_ok: bool
    redis_detail: str
    docker_ok: bool
    docker_detail: str
    reaper: ReaperStatus | None = None
    """The live reapers (None: unknown, Redis is down)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthChanged)


@dataclass(eq=False)
class RedisLost(Message):
    """The event stream failed; the worker retries with backoff."""

    error: str


@dataclass(eq=False)
class LeasesLoaded(Message):
    """Every lease on record, read after the event stream moved (or at start)."""

    leases: list[Lease]
    events: list[LeaseEvent] = field(default_factory=list)
    """The events that caused this reload (empty at start and after a reconnect)."""

    def can_replace(self, message: Message) -> bool:
        # A newer snapshot supersedes this one; its events must still be toasted.
        if isinstance(message, LeasesLoaded):
            message.events[:0] = self.events
            return True
        return False


@dataclass(eq=False)
class ImagesLoaded(Message):
    """Which catalog images the engine has locally."""

    rows: list[ImageRow]


@dataclass(eq=False)
class LogLines(Message):
    """A batch of output lines of one lease's container (with skip markers where lines were
    dropped under load: :class:`~containerlease_tui.logflow.SkipMarker`)."""

    lease_id: str
    lines: list[str]

    def can_replace(self, message: Message) -> bool:
        # Coalesce: the newer batch takes this one's lines in front of its own, so a flood of
        # batches becomes one write; what the bound cuts is counted into a skip marker.
        if isinstance(message, LogLines) and message.lease_id == self.lease_id:
            message.lines = bound_lines([*self.lines, *message.lines], MAX_COALESCED_LINES)
            return True
        return False


@dataclass(eq=False)
class LogStreamEnded(Message):
    """The log stream of a lease ended (container gone) or failed (``error``)."""

    lease_id: str
    error: str | None = None


@dataclass(eq=False)
class LogSaved(Message):
    """The log pane's shown lines were written to ``path`` (or not: ``error``)."""

    path: Path
    lines: int
    error: str | None = None
    filter: str = ""
    """The filter the lines were chosen by ("": every buffered line)."""
    skipped: int = 0
    """Lines the saved stretch skipped under load (marked in the file, not in it)."""
    jumped: bool = False
    """Whether the saved stretch jumped past output that was never read."""


@dataclass(eq=False)
class PullProgressed(Message):
    """Progress of an image pull started by the provision form."""

    progress: PullProgress

    def can_replace(self, message: Message) -> bool:
        # Only a newer report of the same layer supersedes one (the bar sums all layers); a
        # layer's bytes never go back (PullProgress), so the newest report is the whole story.
        return isinstance(message, PullProgressed) and message.progress.layer == self.progress.layer


@dataclass(eq=False)
class ProvisionStatus(Message):
    """A lease being provisioned by this app moved to a new status."""

    lease: Lease


@dataclass(eq=False)
class ProvisionFinished(Message):
    """Provisioning ended: ``lease`` running, or ``error`` (with the failed lease if any)."""

    lease: Lease | None
    error: str | None = None


@dataclass(eq=False)
class ActionDone(Message):
    """An action on a lease finished; ``text`` is shown as a toast."""

    text: str
    severity: SeverityLevel = "information"
    lease: Lease | None = None


@dataclass(eq=False)
class ReaperStateChanged(Message):
    """The in-app reaper started, stopped or failed."""

    running: bool
    error: str | None = None


@dataclass(eq=False)
class ContainersChecked(Message):
    """What the engine says each running or stopped lease's container really does."""

    states: dict[str, ContainerState]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ContainersChecked)
