"""Which lease events become toasts, and in what words (pure: the app shows what this returns).

Only the user's own leases toast. An expiry warning toasts every time the reaper sends one (each
is for another warning point); reaped, reap-failed and provision-failed toast once per lease,
whichever of the stream and the app itself (a provision it ran) tells first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Literal

from containerlease_tui.display import time_left
from containerlease_tui.models import EventType, FailureKind, Lease, LeaseEvent

__all__ = ["Severity", "Toast", "ToastKey", "expiring_in", "failed_key", "toasts_for"]

Severity = Literal["information", "warning", "error"]
"""Textual's notification severities."""
ToastKey = tuple[str, str]
"""(kind, lease id) of a toast shown at most once."""


@dataclass(frozen=True)
class Toast:
    """One notification: what ``App.notify`` gets."""

    text: str
    title: str = ""
    severity: Severity = "information"
    timeout: float | None = None
    """Seconds on screen; None: Textual's default."""
    once: ToastKey | None = None
    """Shown at most once per key: the caller remembers it among the keys already shown."""


def failed_key(lease_id: str) -> ToastKey:
    """The key of a lease's "provision failed" toast (the app's own provision shares it)."""
    return ("failed", lease_id)


def expiring_in(seconds: float) -> str:
    """How long an expiry warning says is left: to the nearest minute from a minute on
    (a warning is about a point such as "2 minutes before"), whole seconds below."""
    return time_left(round(seconds / 60) * 60 if seconds >= 60 else seconds)


def _toast(event: LeaseEvent, lease: Lease) -> Toast | None:
    if event.type is EventType.EXPIRING:
        left = max(0.0, (lease.expires_at - event.at).total_seconds())
        return Toast(
            f"{lease.name} expires in {expiring_in(left)} — press e to extend",
            title="Expiring",
            severity="warning",
            timeout=15,
        )
    if event.type in (EventType.EXPIRED, EventType.REAPED):
        return Toast(
            f"{lease.name} reaped: its lease expired", title="Reaped", once=("reaped", lease.id)
        )
    if event.type is not EventType.FAILED:
        return None
    error = lease.error or ""
    if lease.failure is FailureKind.REAP:
        # The reaper could not remove the container; it keeps retrying.
        return Toast(
            f"{lease.name} could not be reaped: {event.detail or error} (the reaper retries)",
            title="Reap failed",
            severity="error",
            timeout=10,
            once=("reap-failed", lease.id),
        )
    reason = event.detail or error or "unknown reason"
    return Toast(
        f"{lease.name}: provision failed: {reason}",
        severity="error",
        timeout=10,
        once=failed_key(lease.id),
    )


def toasts_for(
    events: Iterable[LeaseEvent],
    leases: Mapping[str, Lease],
    user: str | None,
    shown: Set[ToastKey] = frozenset(),
) -> list[Toast]:
    """The toasts for a batch of events, in order.

    ``leases``: the leases as now known, by id (an event about an unknown lease is skipped);
    ``user``: whose leases toast; ``shown``: the keys of once-only toasts already shown (none
    is repeated, within the batch either). The caller adds each returned toast's ``once``.
    """
    seen = set(shown)
    out: list[Toast] = []
    for event in events:
        lease = leases.get(event.lease)
        if lease is None or lease.owner != user:
            continue
        toast = _toast(event, lease)
        if toast is None:
            continue
        if toast.once is not None:
            if toast.once in seen:
                continue
            seen.add(toast.once)
        out.append(toast)
    return out
