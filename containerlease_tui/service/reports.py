"""What the service hands the shells: plain frozen records, no I/O."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from containerlease_tui.config import ImageSpec
from containerlease_tui.engine import (
    ContainerInfo,
    ContainerStats,
)
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.models import (
    Lease,
    LeaseStatus,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ImageRow:
    """A catalog entry and whether the engine has it locally (None: engine unreachable)."""

    name: str
    spec: ImageSpec
    present: bool | None


@dataclass(frozen=True)
class LeaseStatusReport:
    """A lease with what the engine says about its container right now."""

    lease: Lease
    container: ContainerInfo | None
    stats: ContainerStats | None
    channel: bool | None = None
    """Its message channel accepts connections (None: it has none, or is not running)."""


@dataclass(frozen=True)
class ReaperOverview:
    """The reaper view: every live reaper, the claims held now and the next deadlines."""

    status: ReaperStatus
    claimed: builtins.list[str]
    """Due leases a reaper holds a claim on right now (it is removing them)."""
    upcoming: builtins.list[tuple[str, datetime]]
    """The next deadlines (lease id, deadline), soonest first."""
    at: datetime

    def to_public(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "alive": self.status.alive,
            "reapers": [
                {
                    "host": b.host,
                    "pid": b.pid,
                    "mode": b.mode,
                    "version": b.version,
                    "started_at": b.started_at,
                    "last_seen": b.last_seen,
                    "last_pass": b.last_pass,
                    "passes": b.passes,
                    "reaped": b.reaped,
                    "failed": b.failed,
                }
                for b in self.status.beats
            ],
            "claimed": list(self.claimed),
            "next_deadlines": [
                {"lease": lease_id, "expires_at": at.isoformat()} for lease_id, at in self.upcoming
            ],
        }


@dataclass(frozen=True)
class ContainerState:
    """What the engine says a lease's container is doing, for the shells to show.

    ``state`` is Docker's (``running``, ``exited``, ``dead``, ``created``, ``paused``,
    ``restarting``) or ``gone`` when the container no longer exists.
    """

    state: str
    exit_code: int | None = None
    oom_killed: bool = False
    health: str | None = None
    """Docker's health check verdict (``starting``, ``healthy``, ``unhealthy``); None: the
    image has no health check, or the container is not running."""

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")

    def describe(self) -> str:
        """``exited (1)``, ``OOM-killed (137)``, ``container gone``, ``running``."""
        if self.oom_killed:
            return "OOM-killed" + (f" ({self.exit_code})" if self.exit_code is not None else "")
        if self.state == "gone":
            return "container gone"
        if self.exit_code is not None and self.state in ("exited", "dead"):
            return f"{self.state} ({self.exit_code})"
        return self.state or "unknown"

    def trouble_for(self, lease: Lease) -> bool:
        """The record says the container runs but it does not (a stopped lease's exited
        container is what it should be)."""
        if lease.status is LeaseStatus.RUNNING:
            return not self.running
        if lease.status is LeaseStatus.STOPPED:
            return self.state == "gone"
        return False


def container_state_of(info: ContainerInfo | None) -> ContainerState:
    if info is None:
        return ContainerState("gone")
    return ContainerState(info.state, info.exit_code, info.oom_killed, info.health)


@dataclass(frozen=True)
class VolumeRow:
    """One of the user's named volumes (``containerlease volumes``)."""

    name: str
    engine_name: str
    size: int | None
    """Bytes (None: the engine has not measured it)."""
    created_at: datetime | None
    last_used: datetime | None
    """Now while a lease holds it; else the end of the last lease that mounted it (that the
    records still remember)."""
    leases: tuple[str, ...]
    """Ids of the leases that hold it."""


@dataclass(frozen=True)
class CopyReport:
    """What a ``cp`` did."""

    lease: Lease
    files: int
    size: int
    names: builtins.list[str]


@dataclass(frozen=True)
class HealthReport:
    """What ``containerlease doctor`` and the TUI's status bar show."""

    redis_ok: bool
    redis_detail: str
    docker_ok: bool
    docker_detail: str
