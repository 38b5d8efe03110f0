"""The activity log: which events a user asked for, what another user's events show, and the
command line that does the same thing (pure: no I/O, no Textual).

Who sees what: everybody sees every event's time, type, lease, owner and actor (the same as
``ls --all`` shows every lease); the ``detail`` of another user's event (a failure reason, a
container id, an image) is shown only to admins and the lease's owner, and reads ``redacted``
to anyone else.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from containerlease_tui.models import EventType, LeaseEvent

REDACTED: Final = "(redacted)"


@dataclass(frozen=True)
class EventFilter:
    """``events --lease/--user/--type/--since``: each given one must match."""

    lease: str | None = None
    """A lease id (exact)."""
    user: str | None = None
    """The lease's owner or the actor."""
    types: frozenset[EventType] = frozenset()
    since: datetime | None = None

    def matches(self, event: LeaseEvent) -> bool:
        if self.lease is not None and event.lease != self.lease:
            return False
        if self.user is not None and self.user not in (event.owner, event.actor or event.owner):
            return False
        if self.types and event.type not in self.types:
            return False
        return self.since is None or event.at >= self.since

    def select(self, events: Iterable[LeaseEvent]) -> list[LeaseEvent]:
        return [e for e in events if self.matches(e)]


def parse_types(text: Iterable[str]) -> frozenset[EventType]:
    """``--type created,extended`` (repeatable); ValueError naming the valid types."""
    found: set[EventType] = set()
    for part in (p.strip().lower() for item in text for p in item.split(",")):
        if not part:
            continue
        try:
            found.add(EventType(part))
        except ValueError:
            valid = ", ".join(t.value for t in EventType)
            raise ValueError(f"unknown event type {part[:20]!r}: use {valid}") from None
    return frozenset(found)


def visible(event: LeaseEvent, user: str, admin: bool) -> LeaseEvent:
    """The event as ``user`` may see it: another user's detail redacted for a non-admin."""
    if admin or user in (event.owner, event.actor) or not event.detail:
        return event
    return event.model_copy(update={"detail": REDACTED})


def is_redacted(event: LeaseEvent) -> bool:
    return event.detail == REDACTED


def cli_equivalent(event: LeaseEvent) -> str | None:
    """The ``containerlease`` command line that does what a user's event records, or None for
    what no command does (the reaper's work, provisioning steps, a redacted event)."""
    if is_redacted(event):
        return None
    lease = shlex.quote(event.lease)
    match event.type:
        case EventType.CREATED:
            image, sep, duration = event.detail.partition(" for ")
            if not sep or not image or not duration:
                return None
            return (
                f"containerlease provision {shlex.quote(image)} --duration {shlex.quote(duration)}"
            )
        case EventType.EXTENDED:
            by = event.detail.removeprefix("by ").strip()
            return f"containerlease extend {lease}" + (f" --by {shlex.quote(by)}" if by else "")
        case EventType.RELEASED:
            return f"containerlease rm {lease}"
        case EventType.STOPPED:
            return f"containerlease stop {lease}"
        case EventType.STARTED:
            return f"containerlease start {lease}"
        case EventType.RESTARTED:
            return f"containerlease restart {lease}"
        case _:
            return None
