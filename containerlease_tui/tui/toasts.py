"""Which lease events become toasts, and in what words (pure: the app shows what this returns).

Only the user's own leases toast. An expiry warning toasts once per lease, deadline and warning
point (:func:`policy.warning_points`), whichever tells first: the reaper's ``expiring`` event or
the app's own clock (:func:`expiry_toasts`, so warnings come with no reaper too, and on opening
after a point passed); an extension is a new deadline, so every point warns again. Reaped,
reap-failed and provision-failed toast once per lease, whichever of the stream and the app
itself (a provision it ran) tells first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from containerlease_tui.display import time_left
from containerlease_tui.models import EventType, FailureKind, Lease, LeaseEvent, LeaseStatus
from containerlease_tui.policy import LeasePolicy

if TYPE_CHECKING:
    from containerlease_tui.leases import ContainerState

__all__ = [
    "Severity",
    "Toast",
    "ToastKey",
    "container_toast",
    "expiring_in",
    "expiry_key",
    "expiry_toasts",
    "failed_key",
    "no_logs_reason",
    "toasts_for",
]

EVENT_SLACK = 2.0
"""Seconds an ``expiring`` event may be late and still name the point it was sent for."""

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


def expiry_key(lease: Lease, point: timedelta) -> ToastKey:
    """One expiry toast per lease, deadline and warning point."""
    return (
        "expiring",
        f"{lease.id}@{lease.expires_at.timestamp():.0f}:{point.total_seconds():.0f}",
    )


def _reached(
    lease: Lease, left: float, policy: LeasePolicy, slack: float = 0.0
) -> timedelta | None:
    """The tightest warning point the lease has reached with ``left`` seconds to go."""
    reached = [p for p in policy.warning_points(lease) if left <= p.total_seconds() + slack]
    return reached[-1] if reached else None


def _expiring(lease: Lease, left: float, extend_key: str, once: ToastKey | None) -> Toast:
    return Toast(
        f"{lease.name} expires in {expiring_in(left)} — press {extend_key} to extend",
        title="Expiring",
        severity="warning",
        timeout=15,
        once=once,
    )


def expiry_toasts(
    leases: Iterable[Lease],
    user: str | None,
    now: datetime,
    policy: LeasePolicy,
    shown: Set[ToastKey] = frozenset(),
    extend_key: str = "e",
) -> list[Toast]:
    """The warnings the user's leases are owed at ``now`` by the app's own clock: for each
    active lease past a warning point, the tightest such point, unless shown already."""
    out = []
    for lease in leases:
        if lease.owner != user or not lease.status.is_active:
            continue
        left = (lease.expires_at - now).total_seconds()
        if left <= 0:
            continue  # overdue: the table says so
        point = _reached(lease, left, policy)
        if point is None or expiry_key(lease, point) in shown:
            continue
        out.append(_expiring(lease, left, extend_key, expiry_key(lease, point)))
    return out


def no_logs_reason(lease: Lease) -> str | None:
    """Why a lease has no output to follow (None: it has, or will have once it runs)."""
    if lease.status is LeaseStatus.FAILED:
        error = lease.error or "unknown reason"
        if lease.failure is FailureKind.REAP:
            return f"no logs: {error}"
        return f"no logs: provision failed: {error}"
    if lease.status is LeaseStatus.RELEASED:
        return "no logs: the lease was deleted and its container removed"
    if lease.status is LeaseStatus.EXPIRED:
        return "no logs: the lease expired and its container was removed"
    return None


def container_toast(lease: Lease, state: ContainerState, start_key: str = "t") -> Toast:
    """The owner's container died or vanished while the lease runs on (and is billed)."""
    if state.state == "gone":
        text = f"{lease.name}: its container is gone; the lease is still open (d deletes it)"
    else:
        text = (
            f"{lease.name}: its container {state.describe()}; the lease goes on and is billed"
            f" — press {start_key} to start it"
        )
    return Toast(text, title="Container stopped", severity="error", timeout=15)


def _toast(
    event: LeaseEvent, lease: Lease, policy: LeasePolicy | None, extend_key: str
) -> Toast | None:
    if event.type is EventType.EXPIRING:
        left = max(0.0, (lease.expires_at - event.at).total_seconds())
        if policy is None:
            return _expiring(lease, left, extend_key, None)
        if any(ext.at > event.at for ext in lease.extensions):
            return None  # about an older deadline: the lease was extended since
        point = _reached(lease, left, policy, EVENT_SLACK)
        if point is None:  # a reaper configured with other points: still worth telling
            return _expiring(lease, left, extend_key, ("expiring", f"{lease.id}:{event.id}"))
        return _expiring(lease, left, extend_key, expiry_key(lease, point))
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
    policy: LeasePolicy | None = None,
    extend_key: str = "e",
) -> list[Toast]:
    """The toasts for a batch of events, in order.

    ``leases``: the leases as now known, by id (an event about an unknown lease is skipped);
    ``user``: whose leases toast; ``shown``: the keys of once-only toasts already shown (none
    is repeated, within the batch either). The caller adds each returned toast's ``once``.
    ``policy``: the warning points (an ``expiring`` event then shares its key with
    :func:`expiry_toasts`); without it every ``expiring`` event toasts.
    """
    seen = set(shown)
    out: list[Toast] = []
    for event in events:
        lease = leases.get(event.lease)
        if lease is None or lease.owner != user:
            continue
        toast = _toast(event, lease, policy, extend_key)
        if toast is None:
            continue
        if toast.once is not None:
            if toast.once in seen:
                continue
            seen.add(toast.once)
        out.append(toast)
    return out
