"""LeasePolicy: the lease rules without a store or an engine, and the service's delegation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from containerlease_tui.config import (
    DockerSettings,
    ImageSpec,
    LimitSettings,
    RedisSettings,
    SecuritySettings,
    Settings,
)
from containerlease_tui.errors import Forbidden, InvalidInput, LeaseError
from containerlease_tui.leases import LeaseService
from containerlease_tui.models import Lease, LeaseStatus, Resources
from containerlease_tui.policy import (
    ACTIONS,
    MAX_ENV_VARS,
    MIN_CPUS,
    Action,
    LeasePolicy,
    ProvisionRequest,
    bounded_duration,
    plan_extension,
)

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


def _settings(allowed: Path | None = None, binds: list[str] | None = None) -> Settings:
    return Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1/0"),
        docker=DockerSettings(url="unix:///nonexistent.sock"),
        images={
            "ubuntu": ImageSpec(ref="ubuntu:24.04", hourly_rate=Decimal("0.36")),
            "mounted": ImageSpec(
                ref="busybox:1", hourly_rate=Decimal("0.01"), binds=binds or ["/srv/x:/x"]
            ),
        },
        limits=LimitSettings(
            min_duration=timedelta(minutes=5),
            default_duration=timedelta(hours=1),
            max_duration=timedelta(hours=8),
            max_lifetime=timedelta(hours=24),
            max_cpus=4,
            max_memory=4 * 1024**3,
        ),
        security=SecuritySettings(bind_allowlist=[allowed] if allowed else []),
    )


@pytest.fixture
def policy() -> LeasePolicy:
    return LeasePolicy(_settings())


def _lease(
    status: LeaseStatus = LeaseStatus.RUNNING,
    *,
    owner: str = "alice",
    docker_id: str | None = "c0ffee" * 10 + "abcd",
    left: timedelta = timedelta(minutes=30),
    age: timedelta = timedelta(hours=1),
) -> Lease:
    return Lease(
        id="k7m2x9qa",
        name="api-dev",
        owner=owner,
        image="ubuntu",
        image_ref="ubuntu:24.04",
        resources=Resources(),
        status=status,
        docker_id=docker_id,
        created_at=NOW - age,
        expires_at=NOW + left,
        hourly_rate=Decimal("0.36"),
        host="devbox",
    )


# --- requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (ProvisionRequest("nope"), "image", "unknown image 'nope': choose one of mounted, ubuntu"),
        (ProvisionRequest("ubuntu", "0"), "duration", "must be positive"),
        (ProvisionRequest("ubuntu", "9h"), "duration", "allowed 5m to 8h"),
        (ProvisionRequest("ubuntu", "soon"), "duration", "cannot parse duration"),
        (ProvisionRequest("ubuntu", cpus="many"), "cpus", "invalid cpus 'many': use a number"),
        (ProvisionRequest("ubuntu", cpus="5"), "cpus", "cpus must be between 0.01 and 4"),
        (ProvisionRequest("ubuntu", cpus="nan"), "cpus", "cpus must be between"),
        (ProvisionRequest("ubuntu", cpus="0.001"), "cpus", "cpus must be between"),
        (ProvisionRequest("ubuntu", memory="lots"), "memory", "invalid memory size 'lots'"),
        (ProvisionRequest("ubuntu", memory="1m"), "memory", "at least 6m"),
        (ProvisionRequest("ubuntu", memory="5g"), "memory", "memory must be at most 4g"),
        (ProvisionRequest("ubuntu", env={"1BAD": "x"}), "env", "environment variable name"),
        (ProvisionRequest("ubuntu", env={"OK": "a\x00b"}), "env", "no NUL bytes"),
        (
            ProvisionRequest("ubuntu", env={f"K{i}": "" for i in range(MAX_ENV_VARS + 1)}),
            "env",
            "too many environment variables",
        ),
        (ProvisionRequest("ubuntu", name="Bad Name"), "name", "invalid name 'Bad Name'"),
        (ProvisionRequest("mounted"), "binds", "not under an allowed folder"),
    ],
)
def test_each_refusal_names_its_field(
    policy: LeasePolicy, request_: ProvisionRequest, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        policy.validate(request_)
    assert caught.value.field == field
    assert caught.value.exit_code == 2


def test_the_first_problem_in_form_order_is_the_one_raised(policy: LeasePolicy) -> None:
    bad = ProvisionRequest("ubuntu", "9h", name="Bad Name", cpus="x", memory="lots")
    with pytest.raises(InvalidInput) as caught:
        policy.validate(bad)
    assert caught.value.field == "duration"


def test_a_valid_request_gets_the_image_defaults(policy: LeasePolicy) -> None:
    checked = policy.validate(ProvisionRequest("ubuntu", " ", cpus="", memory=""))
    spec = policy.settings.images["ubuntu"]
    assert (checked.duration, checked.cpus, checked.memory) == (
        timedelta(hours=1),
        spec.cpus,
        spec.memory,
    )
    assert checked.name is None
    assert checked.cost == Decimal("0.3600")


def test_the_pending_lease(policy: LeasePolicy) -> None:
    req = ProvisionRequest("ubuntu", "30m", cpus="2", memory="1g", env={"A": "1"})
    lease = policy.pending_lease(req, owner="alice", host="devbox", now=NOW)
    assert lease.status is LeaseStatus.PENDING
    assert lease.name == f"ubuntu-{lease.id[:4]}"
    assert (lease.owner, lease.host, lease.image_ref) == ("alice", "devbox", "ubuntu:24.04")
    assert lease.resources.cpus == 2 and lease.resources.memory == 1024**3
    assert lease.expires_at - lease.created_at == timedelta(minutes=30)
    assert lease.env == {"A": "1"}
    named = policy.pending_lease(
        ProvisionRequest("ubuntu", name="web"), owner="alice", host="h", now=NOW
    )
    assert named.name == "web"


def test_estimates(policy: LeasePolicy) -> None:
    assert policy.estimate(ProvisionRequest("ubuntu", "20m")) == Decimal("0.1200")
    with pytest.raises(InvalidInput):
        policy.estimate(ProvisionRequest("ubuntu", "20m", memory="lots"))
    # The form's live estimate: the duration's cost, whatever the other fields say.
    assert policy.cost("ubuntu", timedelta(minutes=20)) == Decimal("0.1200")


def test_bounds_for_the_hints(policy: LeasePolicy) -> None:
    assert policy.duration_range == (timedelta(minutes=5), timedelta(hours=8))
    assert policy.cpus_range == (MIN_CPUS, 4)
    assert policy.memory_range == (6 * 1024**2, 4 * 1024**3)


def test_binds_are_resolved_under_an_allowed_folder(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "link").symlink_to(outside)
    ok = LeasePolicy(_settings(allowed, [f"{allowed}/data:/data:ro"]))
    assert ok.check_binds(ok.settings.images["mounted"]) == [f"{allowed / 'data'}:/data:ro"]
    escaping = LeasePolicy(_settings(allowed, [f"{allowed}/link:/data"]))
    with pytest.raises(InvalidInput, match="not under an allowed folder") as caught:
        escaping.check_binds(escaping.settings.images["mounted"])
    assert caught.value.field == "binds"


# --- durations and extensions ----------------------------------------------------------------


def test_durations_are_bounded(policy: LeasePolicy) -> None:
    assert policy.bounded_duration(None) == timedelta(hours=1)
    assert policy.bounded_duration("") == timedelta(hours=1)
    assert policy.bounded_duration("90m") == timedelta(minutes=90)
    with pytest.raises(InvalidInput, match="extension 1m is out of range") as caught:
        policy.bounded_duration("1m", "extension")
    assert caught.value.field == "extension"
    # The module-level function is the same rule (the extend screen uses it).
    assert bounded_duration("2h", policy.limits) == timedelta(hours=2)


def test_the_extension_plan(policy: LeasePolicy) -> None:
    lease = _lease(age=timedelta(hours=1), left=timedelta(hours=1))
    assert policy.plan_extension(lease, timedelta(hours=2), NOW) == lease.expires_at + timedelta(
        hours=2
    )
    with pytest.raises(InvalidInput, match=r"at most 1d in total \(22h left to add\)") as caught:
        policy.plan_extension(lease, timedelta(hours=23), NOW)
    assert caught.value.field == "extension"
    with pytest.raises(InvalidInput, match="too late to extend"):
        plan_extension(_lease(left=-timedelta(seconds=1)), timedelta(hours=1), policy.limits, NOW)
    with pytest.raises(InvalidInput, match="is expired: cannot extend") as caught:
        policy.plan_extension(_lease(LeaseStatus.EXPIRED), timedelta(hours=1), NOW)
    assert caught.value.field == "lease"


# --- who may do what -------------------------------------------------------------------------

RULES: dict[Action, set[LeaseStatus]] = {
    "extend": {
        LeaseStatus.PENDING,
        LeaseStatus.PULLING,
        LeaseStatus.CREATING,
        LeaseStatus.RUNNING,
        LeaseStatus.STOPPED,
    },
    "delete": set(LeaseStatus) - {LeaseStatus.RELEASED, LeaseStatus.EXPIRED},
    "shell": {LeaseStatus.RUNNING},
    "logs": set(LeaseStatus) - {LeaseStatus.RELEASED, LeaseStatus.EXPIRED},
    "stop": {LeaseStatus.RUNNING, LeaseStatus.STOPPED},
    "start": {LeaseStatus.RUNNING, LeaseStatus.STOPPED},
    "restart": {LeaseStatus.RUNNING, LeaseStatus.STOPPED},
}
"""In which states (of a lease with a container) the owner may do each action."""


def test_every_action_has_a_rule() -> None:
    assert set(ACTIONS) == set(RULES)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", list(LeaseStatus))
def test_what_the_owner_may_do_in_each_state(
    policy: LeasePolicy, action: Action, status: LeaseStatus
) -> None:
    reason = policy.allowed(_lease(status), action, "alice", False)
    if status in RULES[action]:
        assert reason is None
        policy.require(_lease(status), action, "alice", False)
    else:
        assert reason is not None and reason.startswith("lease k7m2x9qa ")
        assert "\n" not in reason
        with pytest.raises(InvalidInput) as caught:
            policy.require(_lease(status), action, "alice", False)
        assert str(caught.value) == reason and caught.value.field == "lease"


@pytest.mark.parametrize("action", ["shell", "logs", "stop", "start", "restart"])
def test_container_actions_need_a_container(policy: LeasePolicy, action: Action) -> None:
    reason = policy.allowed(_lease(LeaseStatus.RUNNING, docker_id=None), action, "alice", False)
    assert reason is not None


@pytest.mark.parametrize(
    ("lease", "action", "reason"),
    [
        (_lease(LeaseStatus.FAILED), "extend", "lease k7m2x9qa is failed: cannot extend"),
        (_lease(LeaseStatus.RELEASED), "delete", "lease k7m2x9qa is already released"),
        (
            _lease(LeaseStatus.STOPPED),
            "shell",
            "lease k7m2x9qa is stopped: cannot open a shell in it",
        ),
        (
            _lease(LeaseStatus.PULLING, docker_id=None),
            "shell",
            "lease k7m2x9qa has no container (pulling)",
        ),
        (_lease(LeaseStatus.PENDING), "restart", "lease k7m2x9qa is pending: cannot restart it"),
        (_lease(LeaseStatus.EXPIRED), "logs", "lease k7m2x9qa has no container (expired)"),
    ],
)
def test_the_reasons_read_as_the_service_words_them(
    policy: LeasePolicy, lease: Lease, action: Action, reason: str
) -> None:
    assert policy.allowed(lease, action, "alice", False) == reason


@pytest.mark.parametrize("action", ACTIONS)
def test_only_the_owner_or_an_admin(policy: LeasePolicy, action: Action) -> None:
    lease = _lease(LeaseStatus.EXPIRED)  # refused for the state too: ownership is said first
    reason = policy.allowed(lease, action, "bob", False)
    assert reason is not None and reason.startswith("lease k7m2x9qa belongs to alice: ")
    with pytest.raises(Forbidden):
        policy.require(lease, action, "bob", False)
    running = _lease(LeaseStatus.RUNNING)
    assert policy.allowed(running, action, "bob", True) is None


def test_verbs_in_the_ownership_refusal(policy: LeasePolicy) -> None:
    lease = _lease()
    assert policy.allowed(lease, "shell", "bob", False) == (
        "lease k7m2x9qa belongs to alice: only its owner or an admin may open a shell in it"
    )
    assert str(policy.refusal(lease, "logs", "bob", False)).endswith("may read the logs of it")


# --- the service delegates -------------------------------------------------------------------


def _service(settings: Settings, user: str = "alice", admin: bool = False) -> LeaseService:
    # No store or engine: every call below must be answered by the policy alone.
    return LeaseService(settings, None, None, user=user, admin=admin)  # type: ignore[arg-type]


def test_the_service_delegates_to_its_policy() -> None:
    service = _service(_settings())
    lease = service.check(ProvisionRequest("ubuntu", "20m", name="web"))
    assert (lease.owner, lease.name, lease.host) == ("alice", "web", service.host)
    assert service.estimate(ProvisionRequest("ubuntu", "20m")) == Decimal("0.1200")
    assert service.parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(InvalidInput) as caught:
        service.check(ProvisionRequest("ubuntu", cpus="99"))
    assert caught.value.field == "cpus"
    assert service.allowed(_lease(LeaseStatus.STOPPED), "shell") is not None
    assert service.allowed(_lease(owner="bob"), "delete") is not None
    assert _service(_settings(), admin=True).allowed(_lease(owner="bob"), "delete") is None


def test_the_service_policy_follows_its_settings() -> None:
    service = _service(_settings())
    first = service.policy
    assert service.policy is first
    wider = _settings().model_copy(update={"images": {"extra": first.settings.images["ubuntu"]}})
    service.settings = wider
    assert service.policy.settings is wider
    assert service.check(ProvisionRequest("extra")).image == "extra"


def test_every_error_is_a_lease_error() -> None:
    assert issubclass(InvalidInput, LeaseError) and issubclass(Forbidden, LeaseError)
    assert InvalidInput("x").field is None
