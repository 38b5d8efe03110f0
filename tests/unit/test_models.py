"""The lease model: state machine, cost arithmetic, ids, names, memory sizes, public shape."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from containerlease_tui.models import (
    LEASE_ID_ALPHABET,
    LEASE_ID_LENGTH,
    MIN_MEMORY,
    EventType,
    FailureKind,
    IllegalTransition,
    Lease,
    LeaseEvent,
    LeaseStatus,
    Resources,
    check_transition,
    cost_for,
    format_memory,
    new_lease_id,
    parse_memory,
    validate_name,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MIB = 1024**2
GIB = 1024**3

PENDING = LeaseStatus.PENDING
PULLING = LeaseStatus.PULLING
CREATING = LeaseStatus.CREATING
RUNNING = LeaseStatus.RUNNING
STOPPED = LeaseStatus.STOPPED
RELEASED = LeaseStatus.RELEASED
EXPIRED = LeaseStatus.EXPIRED
FAILED = LeaseStatus.FAILED

# The graph of the models.py docstring, written out by hand (not derived from TRANSITIONS).
# pending -> creating is not drawn in the diagram but is the path taken when the image is
# already present (leases.py skips `pulling` then).
LEGAL_EDGES = {
    (PENDING, PULLING),
    (PENDING, CREATING),
    (PENDING, RELEASED),
    (PENDING, EXPIRED),
    (PENDING, FAILED),
    (PULLING, CREATING),
    (PULLING, RELEASED),
    (PULLING, EXPIRED),
    (PULLING, FAILED),
    (CREATING, RUNNING),
    (CREATING, RELEASED),
    (CREATING, EXPIRED),
    (CREATING, FAILED),
    (RUNNING, STOPPED),
    (RUNNING, RELEASED),
    (RUNNING, EXPIRED),
    (RUNNING, FAILED),
    (STOPPED, RUNNING),
    (STOPPED, RELEASED),
    (STOPPED, EXPIRED),
    (STOPPED, FAILED),
    (FAILED, RELEASED),
    (FAILED, EXPIRED),
}
ALL_PAIRS = list(itertools.product(LeaseStatus, repeat=2))
ILLEGAL_EDGES = [pair for pair in ALL_PAIRS if pair not in LEGAL_EDGES]


def make_lease(**overrides: object) -> Lease:
    fields: dict[str, object] = {
        "name": "dev",
        "owner": "alice",
        "image": "ubuntu",
        "image_ref": "ubuntu:24.04",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=90),
        "hourly_rate": Decimal("0.04"),
    }
    fields.update(overrides)
    return Lease(**fields)  # type: ignore[arg-type]


def in_status(status: LeaseStatus, **overrides: object) -> Lease:
    return make_lease(status=status, **overrides)


# --- the state machine ---------------------------------------------------------------------


def test_the_table_covers_every_status() -> None:
    assert len(ALL_PAIRS) == 64
    assert len(LEGAL_EDGES) == 23
    assert len(ILLEGAL_EDGES) == 41
    assert {s.value for s in LeaseStatus} == {
        "pending",
        "pulling",
        "creating",
        "running",
        "stopped",
        "released",
        "expired",
        "failed",
    }


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL_EDGES))
def test_legal_transition(current: LeaseStatus, target: LeaseStatus) -> None:
    check_transition(current, target)
    lease = in_status(current)
    moved = lease.transition(target)
    assert moved.status is target
    assert lease.status is current  # transition returns a copy


@pytest.mark.parametrize(("current", "target"), ILLEGAL_EDGES)
def test_illegal_transition(current: LeaseStatus, target: LeaseStatus) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, target)
    assert info.value.current is current
    assert info.value.target is target
    assert str(info.value) == f"lease cannot go from {current.value} to {target.value}"
    with pytest.raises(IllegalTransition):
        in_status(current).transition(target)


def test_illegal_transition_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_transition(RELEASED, RUNNING)


def test_terminal_and_active_statuses() -> None:
    assert {s for s in LeaseStatus if s.is_terminal} == {RELEASED, EXPIRED}
    assert {s for s in LeaseStatus if s.is_active} == {PENDING, PULLING, CREATING, RUNNING, STOPPED}
    assert not FAILED.is_terminal
    assert not FAILED.is_active


@pytest.mark.parametrize("target", [RELEASED, EXPIRED, FAILED])
def test_transition_sets_ended_at_when_closing(target: LeaseStatus) -> None:
    before = datetime.now(UTC)
    closed = in_status(RUNNING).transition(target)
    assert closed.ended_at is not None
    assert before <= closed.ended_at <= datetime.now(UTC)
    assert closed.ended_at.tzinfo is not None


@pytest.mark.parametrize(
    ("current", "target"),
    [(PENDING, PULLING), (PENDING, CREATING), (CREATING, RUNNING), (RUNNING, STOPPED)],
)
def test_transition_leaves_ended_at_unset_while_alive(
    current: LeaseStatus, target: LeaseStatus
) -> None:
    assert in_status(current).transition(target).ended_at is None


def test_failed_keeps_error_and_first_ended_at() -> None:
    failed = in_status(CREATING).transition(FAILED, error="image pull failed: not found")
    assert failed.error == "image pull failed: not found"
    ended = failed.ended_at
    assert ended is not None
    expired = failed.transition(EXPIRED)
    assert expired.status is EXPIRED
    assert expired.error == "image pull failed: not found"
    assert expired.ended_at == ended


def test_failure_kind_is_recorded_and_kept() -> None:
    failed = in_status(CREATING).transition(
        FAILED, error="no such image", failure=FailureKind.PROVISION
    )
    assert failed.failure is FailureKind.PROVISION
    assert failed.to_public()["failure"] == "provision"
    assert failed.transition(EXPIRED).failure is FailureKind.PROVISION
    assert Lease.model_validate_json(failed.model_dump_json()).failure is FailureKind.PROVISION
    assert in_status(RUNNING).failure is None
    assert in_status(RUNNING).to_public()["failure"] is None


def test_transition_without_error_keeps_previous_error() -> None:
    lease = in_status(STOPPED, error="stop timed out")
    assert lease.transition(RUNNING).error == "stop timed out"
    assert lease.transition(RUNNING, error="new").error == "new"


# --- cost ----------------------------------------------------------------------------------


def test_estimated_cost_90_minutes_at_4_cents() -> None:
    cost = make_lease().estimated_cost
    assert isinstance(cost, Decimal)
    assert cost == Decimal("0.06")
    assert str(cost) == "0.0600"


def test_accrued_cost_at_fixed_now() -> None:
    lease = make_lease()
    assert lease.accrued_cost(T0) == Decimal("0.0000")
    assert lease.accrued_cost(T0 + timedelta(minutes=30)) == Decimal("0.0200")
    assert str(lease.accrued_cost(T0 + timedelta(minutes=45))) == "0.0300"
    assert lease.accrued_cost(T0 - timedelta(hours=1)) == Decimal("0")  # clock skew: never negative


def test_accrued_cost_stops_at_deadline() -> None:
    lease = make_lease()
    assert lease.accrued_cost(T0 + timedelta(hours=5)) == lease.estimated_cost == Decimal("0.06")


def test_accrued_cost_stops_at_ended_at() -> None:
    lease = make_lease(status=RELEASED, ended_at=T0 + timedelta(minutes=15))
    assert lease.accrued_cost(T0 + timedelta(minutes=60)) == Decimal("0.0100")
    assert lease.accrued_cost(T0 + timedelta(days=3)) == Decimal("0.0100")
    # Before the end, "now" still bounds it.
    assert lease.accrued_cost(T0 + timedelta(minutes=6)) == Decimal("0.0040")


def test_zero_rate_costs_nothing() -> None:
    lease = make_lease(hourly_rate=Decimal("0"))
    assert str(lease.estimated_cost) == "0.0000"
    assert lease.accrued_cost(T0 + timedelta(hours=1)) == 0


def test_negative_rate_refused() -> None:
    with pytest.raises(ValidationError):
        make_lease(hourly_rate=Decimal("-0.01"))


@pytest.mark.parametrize(
    ("rate", "span", "expected"),
    [
        ("0.04", timedelta(minutes=90), "0.0600"),
        ("0.36", timedelta(seconds=10), "0.0010"),
        ("1", timedelta(seconds=18), "0.0050"),
        ("0.36", timedelta(seconds=0.5), "0.0001"),  # 0.00005 rounds half up
        ("0.36", timedelta(seconds=0.4), "0.0000"),  # 0.00004 rounds down
        ("0.01", timedelta(seconds=1), "0.0000"),
        ("0.033333", timedelta(hours=3), "0.1000"),  # 0.099999 rounds to 0.1000
        ("12.5", timedelta(days=1), "300.0000"),
        ("0.04", timedelta(seconds=-60), "0.0000"),
    ],
)
def test_cost_for_rounds_to_a_hundredth_of_a_cent(
    rate: str, span: timedelta, expected: str
) -> None:
    cost = cost_for(Decimal(rate), span)
    assert str(cost) == expected
    assert cost.as_tuple().exponent == -4


def test_cost_is_exact_decimal_arithmetic() -> None:
    # 0.1 + 0.2 style float drift would show up over many small leases.
    total = sum((cost_for(Decimal("0.36"), timedelta(seconds=10)) for _ in range(1000)), Decimal(0))
    assert total == Decimal("1.0000")


# --- seconds left --------------------------------------------------------------------------


def test_seconds_left() -> None:
    lease = make_lease()
    assert lease.seconds_left(T0) == 5400.0
    assert lease.seconds_left(T0 + timedelta(minutes=89, seconds=59.5)) == 0.5
    assert lease.seconds_left(T0 + timedelta(minutes=90)) == 0.0
    assert lease.seconds_left(T0 + timedelta(days=1)) == 0.0
    assert isinstance(lease.seconds_left(T0), float)


def test_seconds_left_defaults_to_the_clock() -> None:
    now = datetime.now(UTC)
    lease = make_lease(created_at=now, expires_at=now + timedelta(hours=1))
    assert 3590 < lease.seconds_left() <= 3600


def test_lifetime_and_names() -> None:
    lease = make_lease(id="abcd2345", docker_id="f" * 64)
    assert lease.lifetime == timedelta(minutes=90)
    assert lease.container_name == "containerlease-abcd2345"
    assert lease.short_docker_id == "f" * 12
    assert make_lease().short_docker_id == ""


# --- ids -----------------------------------------------------------------------------------


def test_lease_id_shape() -> None:
    for _ in range(2000):
        lease_id = new_lease_id()
        assert len(lease_id) == LEASE_ID_LENGTH == 8
        assert set(lease_id) <= set(LEASE_ID_ALPHABET)


def test_lease_id_alphabet_is_unambiguous() -> None:
    assert not set("01lo") & set(LEASE_ID_ALPHABET)
    assert LEASE_ID_ALPHABET.lower() == LEASE_ID_ALPHABET
    assert LEASE_ID_ALPHABET.isalnum()
    assert len(set(LEASE_ID_ALPHABET)) == len(LEASE_ID_ALPHABET) == 32


def test_lease_ids_are_unique() -> None:
    ids = [new_lease_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    # Every character of the alphabet shows up: the ids really are random over all of it.
    assert set("".join(ids)) == set(LEASE_ID_ALPHABET)


def test_lease_gets_a_fresh_id() -> None:
    a, b = make_lease(), make_lease()
    assert a.id != b.id
    assert len(a.id) == 8


@pytest.mark.parametrize("bad", ["ABCD2345", "abc", "a" * 33, "abcd-234", ""])
def test_lease_id_pattern_enforced(bad: str) -> None:
    with pytest.raises(ValidationError):
        make_lease(id=bad)


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "dev", "web-1", "my_box.2", "0day", "a" * 40, "x-_."])
def test_validate_name_good(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "Dev", "-dev", "_dev", ".dev", "a" * 41, "has space", " dev", "dév", "a/b"]
)
def test_validate_name_bad(name: str) -> None:
    with pytest.raises(ValueError, match="invalid name"):
        validate_name(name)


@pytest.mark.parametrize(
    "name", ["dev\n", "dev\x00", "\ndev", "dév", "\uff44\uff45\uff56", "dev\u0661"]
)
def test_validate_name_rejects_newlines_and_non_ascii(name: str) -> None:
    with pytest.raises(ValueError):
        validate_name(name)


def test_validate_name_message_truncates() -> None:
    with pytest.raises(ValueError) as info:
        validate_name("X" * 5000)
    assert len(str(info.value)) < 200


# --- memory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * MIB),
        ("1g", GIB),
        ("1G", GIB),
        ("1.5g", GIB + 512 * MIB),
        ("1.5GiB", GIB + 512 * MIB),
        ("64MB", 64 * MIB),
        ("64mib", 64 * MIB),
        ("1 g", GIB),
        ("  256m ", 256 * MIB),
        ("6m", MIN_MEMORY),
        ("8192k", 8 * MIB),
        ("1t", 1024**4),
        ("7000000", 7_000_000),
        (7_000_000, 7_000_000),
    ],
)
def test_parse_memory_good(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "-1m",
        "1e3",
        "1x",
        "m",
        "1.5.5g",
        "1 000m",
        "5m",
        "1k",
        "1024",
        "1.5",
        "64m!",
        "\u0661\u0662\u0668m",
        "64m\nx",
        0,
        100,
        True,
    ],
)
def test_parse_memory_bad(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_memory(text)


def test_parse_memory_messages() -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 256m, 1g or 1\.5g"):
        parse_memory("lots")
    with pytest.raises(ValueError, match="at least 6m"):
        parse_memory("5m")


@pytest.mark.parametrize(
    ("size", "text"),
    [(GIB, "1g"), (512 * MIB, "512m"), (8 * 1024, "8k"), (GIB + 512 * MIB, "1536m")],
)
def test_format_memory_round_trip(size: int, text: str) -> None:
    assert format_memory(size) == text
    if size >= MIN_MEMORY:
        assert parse_memory(text) == size


def test_resources_defaults_and_bounds() -> None:
    r = Resources()
    assert (r.cpus, r.memory, r.pids) == (1.0, 512 * MIB, 512)
    for bad in ({"cpus": 0}, {"memory": MIN_MEMORY - 1}, {"pids": 15}, {"pids": 65537}):
        with pytest.raises(ValidationError):
            Resources(**bad)  # type: ignore[arg-type]


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["created_at", "expires_at", "ended_at"])
def test_naive_timestamps_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        make_lease(**{field: datetime(2025, 3, 1, 12, 0)})


def test_aware_timestamps_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    lease = make_lease(
        created_at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two),
        expires_at=datetime(2025, 3, 1, 15, 30, tzinfo=plus_two),
    )
    assert lease.created_at == T0
    assert lease.created_at.utcoffset() == timedelta(0)
    assert lease.lifetime == timedelta(minutes=90)


def test_json_round_trip() -> None:
    lease = make_lease(docker_id="c0ffee", env={"A": "1"}).transition(CREATING)
    again = Lease.model_validate_json(lease.model_dump_json())
    assert again == lease
    assert again.hourly_rate == Decimal("0.04")


# --- the public shape ----------------------------------------------------------------------

PUBLIC_FIELDS = {
    "id",
    "name",
    "owner",
    "image",
    "image_ref",
    "status",
    "docker_id",
    "created_at",
    "expires_at",
    "seconds_left",
    "hourly_rate",
    "estimated_cost",
    "accrued_cost",
    "error",
}


def test_to_public_fields() -> None:
    lease = make_lease(id="abcd2345", docker_id="c0ffee")
    public = lease.to_public(T0 + timedelta(minutes=30))
    assert set(public) >= PUBLIC_FIELDS
    assert public["id"] == "abcd2345"
    assert public["name"] == "dev"
    assert public["owner"] == "alice"
    assert public["image"] == "ubuntu"
    assert public["image_ref"] == "ubuntu:24.04"
    assert public["status"] == "pending"
    assert public["docker_id"] == "c0ffee"
    assert public["created_at"] == "2025-03-01T12:00:00+00:00"
    assert public["expires_at"] == "2025-03-01T13:30:00+00:00"
    assert public["seconds_left"] == 3600.0
    assert public["hourly_rate"] == "0.04"
    assert public["estimated_cost"] == "0.0600"
    assert public["accrued_cost"] == "0.0200"
    assert public["error"] is None
    json.dumps(public)  # plain JSON types only


def test_to_public_of_a_failed_lease() -> None:
    failed = make_lease().transition(FAILED, error="boom")
    public = failed.to_public(T0 + timedelta(hours=2))
    assert public["status"] == "failed"
    assert public["error"] == "boom"
    assert public["seconds_left"] == 0.0
    assert public["docker_id"] is None


def test_lease_event_defaults() -> None:
    event = LeaseEvent(type=EventType.CREATED, lease="abcd2345", owner="alice")
    assert event.id == ""
    assert event.detail == ""
    assert event.at.tzinfo is not None
    assert EventType("expired") is EventType.EXPIRED
