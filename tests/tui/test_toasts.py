"""The toast rules, as a pure function: which events toast, in what words, and only once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from containerlease_tui.models import EventType, FailureKind, Lease, LeaseEvent, LeaseStatus
from containerlease_tui.tui.toasts import Toast, expiring_in, failed_key, toasts_for

from .fakes import NOW, demo_leases

LEASES = {lease.id: lease for lease in demo_leases()}
MINE = "b4n8c3rd"  # alice's pg-test, 2 min 5 s left at NOW
BOBS = "w6t5y2pe"


def _event(kind: EventType, lease_id: str = MINE, detail: str = "", serial: int = 1) -> LeaseEvent:
    owner = LEASES[lease_id].owner if lease_id in LEASES else ""
    return LeaseEvent(
        id=f"1-{serial}", type=kind, lease=lease_id, owner=owner, at=NOW, detail=detail
    )


def _with(lease_id: str, **update: object) -> dict[str, Lease]:
    return {**LEASES, lease_id: LEASES[lease_id].model_copy(update=update)}


def test_an_expiry_warning_for_my_lease_only() -> None:
    toasts = toasts_for(
        [_event(EventType.EXPIRING), _event(EventType.EXPIRING, BOBS)], LEASES, "alice"
    )
    assert toasts == [
        Toast(
            "pg-test expires in 2 min — press e to extend",
            title="Expiring",
            severity="warning",
            timeout=15,
        )
    ]
    assert toasts_for([_event(EventType.EXPIRING)], LEASES, None) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42.9, "42 s"), (89, "1 min"), (125, "2 min"), (151, "3 min"), (3600, "1 h")],
)
def test_expiry_warnings_say_the_nearest_minute(seconds: float, text: str) -> None:
    assert expiring_in(seconds) == text


def test_unknown_leases_and_quiet_events_make_no_toast() -> None:
    events = [
        _event(EventType.EXPIRING, "zzzzzzzz"),
        _event(EventType.CREATED),
        _event(EventType.RUNNING),
        _event(EventType.EXTENDED),
    ]
    assert toasts_for(events, LEASES, "alice") == []


def test_reaped_toasts_once_within_a_batch_and_across_batches() -> None:
    batch = [_event(EventType.EXPIRED), _event(EventType.REAPED, serial=2)]
    first = toasts_for(batch, LEASES, "alice")
    assert first == [
        Toast("pg-test reaped: its lease expired", title="Reaped", once=("reaped", MINE))
    ]
    shown = {t.once for t in first if t.once}
    assert toasts_for([_event(EventType.REAPED, serial=3)], LEASES, "alice", shown) == []


def test_a_failed_provision_and_a_failed_reap() -> None:
    failed = _with(MINE, status=LeaseStatus.FAILED, error="pull denied")
    [toast] = toasts_for([_event(EventType.FAILED)], failed, "alice")
    assert toast.text == "pg-test: provision failed: pull denied"
    assert (toast.severity, toast.timeout, toast.once) == ("error", 10, failed_key(MINE))
    # The app's own provision toast shares the key: whichever comes first is the only one.
    assert toasts_for([_event(EventType.FAILED)], failed, "alice", {failed_key(MINE)}) == []
    unknown = _with(MINE, status=LeaseStatus.FAILED)
    assert toasts_for([_event(EventType.FAILED)], unknown, "alice")[0].text.endswith(
        "provision failed: unknown reason"
    )

    reap = _with(MINE, status=LeaseStatus.FAILED, error="busy", failure=FailureKind.REAP)
    batch = [_event(EventType.FAILED, detail="engine down"), _event(EventType.FAILED, serial=2)]
    [toast] = toasts_for(batch, reap, "alice", {failed_key(MINE)})
    assert toast == Toast(
        "pg-test could not be reaped: engine down (the reaper retries)",
        title="Reap failed",
        severity="error",
        timeout=10,
        once=("reap-failed", MINE),
    )


def test_the_warning_counts_from_the_event_not_from_now() -> None:
    lease = LEASES[MINE]
    later = _event(EventType.EXPIRING).model_copy(
        update={"at": lease.expires_at - timedelta(seconds=30)}
    )
    [toast] = toasts_for([later], LEASES, "alice")
    assert toast.text.startswith("pg-test expires in 30 s")
