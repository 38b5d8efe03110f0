"""The fakes are enough for the real LeaseService and the real Reaper: a lease provisioned,
pulled, run, extended, expired and reaped over MemoryStore + FakeRuntime alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from containerlease_tui.config import (
    DockerSettings,
    ImageSpec,
    LimitSettings,
    ReaperSettings,
    RedisSettings,
    Settings,
)
from containerlease_tui.engine import LABEL_LEASE, PullProgress
from containerlease_tui.leases import LeaseService, ProvisionFailed, ProvisionRequest
from containerlease_tui.models import EventType, FailureKind, LeaseStatus
from containerlease_tui.reaper import Reaper
from tests.fakes import FakeRuntime, MemoryStore

from .conftest import UNREACHABLE_IMAGE

REPORT = PullProgress("layer0", "Downloading", 10, 10, 1, 1)


def _settings() -> Settings:
    return Settings(
        redis=RedisSettings(url="redis://unused.invalid:6379/0", key_prefix="e2e"),
        docker=DockerSettings(url="unix:///unused.sock"),
        images={
            "box": ImageSpec(ref="busybox:e2e", hourly_rate=Decimal("0.36")),
            "offline": ImageSpec(ref=UNREACHABLE_IMAGE, hourly_rate=Decimal("0.01")),
        },
        limits=LimitSettings(
            min_duration=timedelta(seconds=1),
            default_duration=timedelta(hours=1),
            max_duration=timedelta(hours=8),
            max_lifetime=timedelta(hours=24),
            daily_budget_hours=Decimal(10),
        ),
        reaper=ReaperSettings(
            interval=timedelta(seconds=1),
            backoff=timedelta(milliseconds=10),
            grace=timedelta(seconds=1),
            lock_ttl=timedelta(seconds=5),
        ),
    )


async def test_provision_extend_expire_reap_over_the_fakes() -> None:
    settings = _settings()
    store, runtime = MemoryStore(settings), FakeRuntime(registry={"busybox:e2e": [REPORT]})
    service = LeaseService(settings, store, runtime, user="alice", admin=False)
    progress: list[PullProgress] = []
    statuses: list[LeaseStatus] = []
    lease = await service.provision(
        ProvisionRequest("box", "2s", name="short"),
        on_progress=progress.append,
        on_status=lambda x: statuses.append(x.status),
    )
    assert statuses == [
        LeaseStatus.PENDING,
        LeaseStatus.PULLING,
        LeaseStatus.CREATING,
        LeaseStatus.RUNNING,
    ]
    assert progress == [REPORT]
    assert lease.docker_id is not None
    info = await runtime.inspect(lease.docker_id)
    assert info is not None and info.running and info.labels[LABEL_LEASE] == lease.id
    extended = await service.extend(lease.id, "1s")
    assert extended.expires_at == lease.expires_at + timedelta(seconds=1)

    reaper = Reaper(settings, store, runtime)
    for _ in range(100):  # the deadline is about 3 s away
        result = await reaper.run_once()
        if result.reaped:
            break
        await asyncio.sleep(0.2)
    assert result.reaped == 1
    closed = await store.get(lease.id)
    assert closed is not None and closed.status is LeaseStatus.EXPIRED
    assert await runtime.inspect(lease.docker_id) is None
    events = [e.type for e in (await store.follow_events("0")).events if e.lease == lease.id]
    assert events[:5] == [
        EventType.CREATED,
        EventType.PULLING,
        EventType.CREATING,
        EventType.RUNNING,
        EventType.EXTENDED,
    ]
    assert events[-2:] == [EventType.EXPIRED, EventType.REAPED]


async def test_a_failed_pull_fails_the_lease_and_refunds_it() -> None:
    settings = _settings()
    store, runtime = MemoryStore(settings), FakeRuntime(registry={"busybox:e2e": [REPORT]})
    service = LeaseService(settings, store, runtime, user="alice", admin=False)
    with pytest.raises(ProvisionFailed, match="could not be pulled") as failed:
        await service.provision(ProvisionRequest("offline", "8h", name="nope"))
    lease = failed.value.lease
    assert lease is not None
    assert (lease.status, lease.failure) == (LeaseStatus.FAILED, FailureKind.PROVISION)
    assert runtime.containers == {}
    # The 8 h went back to the 10 h budget: another 8 h lease fits.
    await service.provision(ProvisionRequest("box", "8h", name="fits"))


async def test_a_lost_data_set_is_noticed_and_its_leases_adopted_over_the_fakes() -> None:
    settings = _settings()
    store, runtime = MemoryStore(settings), FakeRuntime(registry={"busybox:e2e": [REPORT]})
    service = LeaseService(settings, store, runtime, user="alice", admin=False)
    lease = await service.provision(ProvisionRequest("box", "1h", name="kept"))
    await service.extend(lease.id, "1h")  # the extension lives only in the store
    reaper = Reaper(settings, store, runtime)
    assert await reaper.adopter.check() == 0  # the data set it starts with
    store.lose_everything()
    assert await store.get(lease.id) is None
    assert await reaper.adopter.check() == 1
    adopted = await store.get(lease.id)
    assert adopted is not None and adopted.status is LeaseStatus.RUNNING
    assert (adopted.owner, adopted.name, adopted.image) == ("alice", "kept", "box")
    assert adopted.docker_id == lease.docker_id
    assert adopted.expires_at == lease.expires_at  # the label deadline: later than loss + grace
    warned = [e for e in (await store.follow_events("0")).events if e.type is EventType.EXPIRING]
    assert len(warned) == 1 and "Redis lost" in warned[0].detail
    assert await reaper.adopter.check() == 0  # once
