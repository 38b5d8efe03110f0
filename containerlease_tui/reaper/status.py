"""Whether any reaper is alive, read from the heartbeats: what ``doctor`` and the app show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from containerlease_tui.display import expires_in
from containerlease_tui.durations import format_duration_seconds
from containerlease_tui.models import utcnow
from containerlease_tui.store import ReaperBeat
from containerlease_tui.store.protocol import Store

NO_REAPER: Final = "no reaper running — leases will not be cleaned while the app is closed"
NO_REAPER_SHORT: Final = "no reaper running — leases not cleaned once closed"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def humane_left(seconds: float) -> str:
    """``expires in …`` wording (the one formatter: :func:`display.expires_in`)."""
    return expires_in(seconds)


def _last_pass(beat: ReaperBeat) -> datetime:
    try:
        return datetime.fromisoformat(beat.last_pass) if beat.last_pass else EPOCH
    except ValueError:
        return EPOCH


@dataclass(frozen=True)
class ReaperStatus:
    """The reapers alive for this installation, read from their heartbeats: what ``doctor``
    prints and the app's status bar shows, as fields (nothing parses the sentence)."""

    beats: tuple[ReaperBeat, ...]

    @property
    def alive(self) -> bool:
        return bool(self.beats)

    @property
    def count(self) -> int:
        return len(self.beats)

    @property
    def newest(self) -> ReaperBeat | None:
        """The beat with the latest pass (the one to name)."""
        return max(self.beats, key=_last_pass) if self.beats else None

    def last_pass_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the newest reaper's last pass; None before its first."""
        beat = self.newest
        if beat is None or _last_pass(beat) <= EPOCH:
            return None
        return max(0.0, ((now or utcnow()) - _last_pass(beat)).total_seconds())

    def describe(self, now: datetime | None = None) -> str:
        """One line for people, e.g. ``reaper alive on devbox (pid 42, last pass 3 s ago)``."""
        return self.forms(now)[0]

    def forms(self, now: datetime | None = None) -> list[str]:
        """The line and shorter readings of it, longest first (for a narrow status bar)."""
        beat = self.newest
        if beat is None:
            return [NO_REAPER, NO_REAPER_SHORT, "no reaper running"]
        age = self.last_pass_age(now)
        when = (
            "no pass yet" if age is None else f"last pass {format_duration_seconds(round(age))} ago"
        )
        more = f" and {self.count - 1} more" if self.count > 1 else ""
        named = f"reaper alive on {beat.host}"
        return list(
            dict.fromkeys(
                [f"{named} (pid {beat.pid}, {when}){more}", named + more, named, "reaper alive"]
            )
        )


async def reaper_report(store: Store) -> ReaperStatus:
    """The live reapers (for ``LeaseService.reaper_status``). Raises :class:`StoreError` when
    Redis cannot be reached."""
    return ReaperStatus(tuple(await store.reapers()))


async def reaper_status(store: Store) -> str:
    """One line on the reapers alive. Raises :class:`StoreError` when Redis cannot be reached."""
    return (await reaper_report(store)).describe()
