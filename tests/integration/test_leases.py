"""LeaseService against the real engine and redis-server: provisioning, quotas, failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings
from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    PullProgress,
)
from containerlease_tui.leases import (
    Forbidden,
    InvalidInput,
    LeaseError,
    LeaseService,
    NotFound,
    ProvisionFailed,
    ProvisionRequest,
    QuotaError,
    ServiceUnavailable,
)
from containerlease_tui.models import EventType, FailureKind, Lease, LeaseStatus, utcnow
from tests.store_helpers import active_count, budget_used, events_for

pytestmark = pytest.mark.usefixtures("cleanup_containers")


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[LeaseService]:
    svc = LeaseService.open(settings, user="alice")
    yield svc
    await svc.close()


async def _our_containers(docker: aiodocker.Docker, prefix: str) -> list[dict[str, object]]:
    found = await docker.containers.list(
        all=True, filters={"label": [f"{LABEL_INSTANCE}={prefix}"]}
    )
    return [c._container for c in found]


async def test_provision_runs_with_labels_and_limits(
    service: LeaseService, docker: aiodocker.Docker, settings: Settings
) -> None:
    lease = await service.provision(ProvisionRequest("busybox", "30m", name="web"))
    assert lease.status is LeaseStatus.RUNNING
    assert lease.docker_id
    info = await docker.containers.container(lease.docker_id).show()
    assert info["State"]["Running"] is True
    labels = info["Config"]["Labels"]
    assert labels[LABEL_LEASE] == lease.id
    assert labels[LABEL_OWNER] == "alice"
    assert labels[LABEL_INSTANCE] == settings.redis.key_prefix
    assert labels[LABEL_EXPIRES].endswith("Z")
    host = info["HostConfig"]
    assert host["Memory"] == 64 * 1024**2
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["RestartPolicy"]["Name"] == "no"
    events = [e.type for e in await events_for(service.store, lease.id)]
    assert events == [EventType.CREATED, EventType.CREATING, EventType.RUNNING]


async def test_extend_release_and_event_order(
    service: LeaseService, docker: aiodocker.Docker
) -> None:
    lease = await service.provision(ProvisionRequest("busybox", "10m"))
    extended = await service.extend(lease.id, "30m")
    assert extended.expires_at - lease.expires_at >= timedelta(minutes=30) - timedelta(seconds=1)
    score = await service.store.redis.zscore(service.store.keys.deadlines, lease.id)
    assert score == pytest.approx(extended.expires_at.timestamp())
    await service.stop(lease.id)  # a stopped container must be removed too
    released = await service.release(lease.name)
    assert released.status is LeaseStatus.RELEASED
    assert await _our_containers(docker, service.settings.redis.key_prefix) == []
    assert await active_count(service.store, "alice") == 0
    assert await service.store.due(extended.expires_at + timedelta(days=1)) == []
    events = [e.type for e in await events_for(service.store, lease.id)]
    assert events == [
        EventType.CREATED,
        EventType.CREATING,
        EventType.RUNNING,
        EventType.EXTENDED,
        EventType.STOPPED,
        EventType.RELEASED,
    ]


async def test_lifecycle_status(service: LeaseService) -> None:
    lease = await service.provision(ProvisionRequest("busybox", "10m"))
    report = await service.status(lease.id[:5])
    assert report.container is not None and report.container.running
    assert report.stats is not None and report.stats.memory_limit > 0
    assert (await service.stop(lease.id)).status is LeaseStatus.STOPPED
    assert (await service.start(lease.id)).status is LeaseStatus.RUNNING
    assert (await service.restart(lease.id)).status is LeaseStatus.RUNNING
    lines = []
    async for line in service.logs(lease, follow=False):
        lines.append(line)
    assert "tick" in lines


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (ProvisionRequest("nope"), "unknown image"),
        (ProvisionRequest("busybox", "0"), "must be positive"),
        (ProvisionRequest("busybox", "0s"), "must be positive"),
        (ProvisionRequest("busybox", "-5m"), "negative"),
        (ProvisionRequest("busybox", "9h"), "allowed 1s to 8h"),
        (ProvisionRequest("busybox", "soon"), "cannot parse duration"),
        (ProvisionRequest("busybox", "10m", name="Bad Name"), "invalid name"),
        (ProvisionRequest("busybox", "10m", memory="lots"), "invalid memory"),
        (ProvisionRequest("busybox", "10m", cpus="99"), "cpus must be"),
        (ProvisionRequest("busybox", "10m", env={"1BAD": "x"}), "environment variable"),
    ],
)
async def test_bad_input_changes_nothing(
    service: LeaseService, docker: aiodocker.Docker, req: ProvisionRequest, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await service.provision(req)
    assert await service.list(all_users=True) == []
    assert await active_count(service.store) == 0
    assert await _our_containers(docker, service.settings.redis.key_prefix) == []


async def _insert_with_id(service: LeaseService, lease_id: str, name: str) -> Lease:
    lease = service.check(ProvisionRequest("busybox", "10m", name=name))
    lease = lease.model_copy(update={"id": lease_id})
    await service.store.insert(lease, max_per_user=100, max_total=300)
    return lease


async def test_unknown_and_ambiguous_ids(service: LeaseService) -> None:
    with pytest.raises(NotFound):
        await service.extend("zzzzzzzz", "1m")
    with pytest.raises(InvalidInput, match="invalid lease id"):
        await service.release("../etc")
    a = await _insert_with_id(service, "abcd2345", "same")
    b = await _insert_with_id(service, "abcd6789", "other")
    with pytest.raises(InvalidInput, match="ambiguous lease id 'abcd'") as caught:
        await service.resolve("abcd")
    assert caught.value.exit_code == 2
    assert "abcd2345" in str(caught.value) and "abcd6789" in str(caught.value)
    assert (await service.resolve("abcd2")).id == a.id
    assert (await service.resolve(b.id)).id == b.id
    assert (await service.resolve("same")).id == a.id
    with pytest.raises(InvalidInput, match="already has an active lease named 'same'"):
        await service.submit(ProvisionRequest("busybox", "10m", name="same"))
    # Two closed leases of one name: the name no longer says which.
    for lease in (a, b):
        await service.store.update(lease.id, lambda x: x.transition(LeaseStatus.RELEASED))
    c = await _insert_with_id(service, "abcd3456", "same")  # a closed lease frees its name
    await service.store.update(c.id, lambda x: x.transition(LeaseStatus.RELEASED))
    with pytest.raises(InvalidInput, match="ambiguous lease name 'same'"):
        await service.resolve("same")


async def test_ids_past_retention_leave_the_index(
    service: LeaseService, redis_client: aioredis.Redis
) -> None:
    await _insert_with_id(service, "wxyz2345", "one")
    await _insert_with_id(service, "wxyz6789", "two")
    # The record's own TTL ran out (retention passed): Redis dropped the hash.
    await redis_client.delete(service.store.keys.lease("wxyz6789"))
    assert (await service.resolve("wxyz")).id == "wxyz2345"
    assert await redis_client.zscore(service.store.keys.ids, "wxyz6789") is None


async def test_same_name_race_has_one_winner(service: LeaseService) -> None:
    results = await asyncio.gather(
        *(service.submit(ProvisionRequest("busybox", "10m", name="dup")) for _ in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Lease)]
    losers = [r for r in results if isinstance(r, InvalidInput)]
    assert len(winners) == 1 and len(losers) == 9, results
    assert await active_count(service.store, "alice") == 1


async def test_failed_pull_cleans_up(service: LeaseService, docker: aiodocker.Docker) -> None:
    with pytest.raises(ProvisionFailed, match="provision failed") as caught:
        await service.provision(ProvisionRequest("offline", "10m"))
    failed = caught.value.lease
    assert failed is not None and failed.status is LeaseStatus.FAILED
    assert failed.error and "registry.invalid" in failed.error
    assert failed.failure is FailureKind.PROVISION
    assert caught.value.reason == failed.error
    assert await active_count(service.store) == 0
    assert await _our_containers(docker, service.settings.redis.key_prefix) == []
    events = [e.type for e in await events_for(service.store, failed.id)]
    assert events == [EventType.CREATED, EventType.PULLING, EventType.FAILED]


async def test_daemon_unreachable(settings: Settings, tmp_path: Path) -> None:
    broken = settings.model_copy(deep=True)
    broken.docker.url = f"unix://{tmp_path}/no-docker.sock"
    svc = LeaseService.open(broken, user="alice")
    try:
        with pytest.raises(ProvisionFailed, match="unreachable"):
            await svc.provision(ProvisionRequest("busybox", "10m"))
        assert await active_count(svc.store) == 0
    finally:
        await svc.close()


async def test_redis_unreachable(settings: Settings, docker: aiodocker.Docker) -> None:
    broken = settings.model_copy(deep=True)
    broken.redis.url = "redis://127.0.0.1:1/0"
    svc = LeaseService.open(broken, user="alice")
    try:
        with pytest.raises(ServiceUnavailable, match=r"Redis .* unreachable"):
            await svc.provision(ProvisionRequest("busybox", "10m"))
    finally:
        await svc.close()
    assert await _our_containers(docker, settings.redis.key_prefix) == []


async def test_fifty_at_once(settings: Settings, docker: aiodocker.Docker) -> None:
    svc = LeaseService.open(settings, user="alice")
    try:
        leases = await asyncio.gather(
            *(svc.provision(ProvisionRequest("busybox", "10m")) for _ in range(50))
        )
        assert {lease.status for lease in leases} == {LeaseStatus.RUNNING}
        assert len({lease.id for lease in leases}) == 50
        containers = await _our_containers(docker, settings.redis.key_prefix)
        assert len(containers) == 50
        assert {c["Labels"][LABEL_LEASE] for c in containers} == {x.id for x in leases}
        assert await active_count(svc.store) == 50
    finally:
        await svc.close()


async def test_race_for_last_slot(settings: Settings) -> None:
    limited = settings.model_copy(deep=True)
    limited.limits.max_leases_total = 3
    svcs = [LeaseService.open(limited, user=f"user{i}") for i in range(8)]
    try:
        await svcs[0].submit(ProvisionRequest("busybox", "10m"))
        await svcs[1].submit(ProvisionRequest("busybox", "10m"))
        results = await asyncio.gather(
            *(s.submit(ProvisionRequest("busybox", "10m")) for s in svcs[2:]),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, QuotaError)]
        assert len(winners) == 1
        assert len(losers) == 5
        assert await active_count(svcs[0].store) == 3
    finally:
        for s in svcs:
            await s.close()


async def test_crash_between_create_and_start_leaves_traces(
    settings: Settings, config_file: Path, docker: aiodocker.Docker
) -> None:
    """A process killed after create, before start: the labels and the record both remain."""
    script = textwrap.dedent(
        """
        import asyncio, json, os, sys
        from containerlease_tui.config import load_settings
        from containerlease_tui.leases import LeaseService, ProvisionRequest

        async def main():
            svc = LeaseService.open(load_settings(), user="alice")
            async def crash(cid):
                print(json.dumps({"cid": cid}), flush=True)
                os._exit(137)  # as abrupt as kill -9: no cleanup runs
            svc.engine.start = crash
            await svc.provision(ProvisionRequest("busybox", "10m"))

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        env={**__import__("os").environ, "CONTAINERLEASE_CONFIG": str(config_file)},
        stdout=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 137
    cid = json.loads(out.decode().strip().splitlines()[-1])["cid"]
    info = await docker.containers.container(cid).show()
    lease_id = info["Config"]["Labels"][LABEL_LEASE]
    assert info["Config"]["Labels"][LABEL_EXPIRES]
    svc = LeaseService.open(settings, user="alice")
    try:
        lease = await svc.store.get(lease_id)
        assert lease is not None
        assert lease.status is LeaseStatus.CREATING
        assert lease.docker_id == cid
        assert lease_id in await svc.store.due(lease.expires_at)
    finally:
        await svc.close()


async def test_complete_touches_only_a_pending_lease_of_ones_own(
    service: LeaseService, settings: Settings, docker: aiodocker.Docker
) -> None:
    lease = await service.provision(ProvisionRequest("busybox", "10m", name="mine"))
    assert lease.docker_id
    bob = LeaseService.open(settings, user="bob")
    try:
        with pytest.raises(Forbidden, match="belongs to alice"):
            await bob.complete(lease.id)
    finally:
        await bob.close()
    with pytest.raises(InvalidInput, match="is running, not pending"):
        await service.complete(lease.id)
    current = await service.store.get(lease.id)
    assert current is not None and current.status is LeaseStatus.RUNNING
    info = await docker.containers.container(lease.docker_id).show()
    assert info["State"]["Running"] is True


async def test_a_second_provisioner_changes_nothing(service: LeaseService) -> None:
    lease = await service.submit(ProvisionRequest("busybox", "10m"))
    assert await service.store.provisioning_start(lease.id, timedelta(seconds=30))
    with pytest.raises(InvalidInput, match="already being provisioned"):
        await service.complete(lease.id)
    current = await service.store.get(lease.id)
    assert current is not None and current.status is LeaseStatus.PENDING
    await service.store.provisioning_done(lease.id)
    done = await service.complete(lease.id)
    assert done.status is LeaseStatus.RUNNING
    # The provisioner's liveness key is gone once it is done.
    assert await service.store.provisioning_alive([lease.id]) == set()


async def test_extend_refused_once_due_or_claimed(service: LeaseService) -> None:
    lease = await service.provision(ProvisionRequest("busybox", "1s"))
    # Until its deadline has passed (no reaper runs here, so it stays unreaped).
    await asyncio.sleep(max(0.0, (lease.expires_at - utcnow()).total_seconds()) + 0.02)
    with pytest.raises(InvalidInput, match="too late to extend"):
        await service.extend(lease.id, "30m")
    other = await service.provision(ProvisionRequest("busybox", "10m"))
    token = await service.store.claim(other.id, timedelta(seconds=30))
    assert token
    with pytest.raises(LeaseError, match="being removed by a reaper"):
        await service.extend(other.id, "30m")
    await service.store.release_claim(other.id, token)
    extended = await service.extend(other.id, "30m")
    assert extended.expires_at - other.expires_at == timedelta(minutes=30)


async def test_budget_is_given_back_by_failures_and_early_releases(settings: Settings) -> None:
    budgeted = settings.model_copy(deep=True)
    budgeted.limits.daily_budget_hours = Decimal("1")
    svc = LeaseService.open(budgeted, user="alice")
    try:
        for _ in range(3):  # 3 x 30 min would overflow the budget if failures kept their hours
            with pytest.raises(ProvisionFailed):
                await svc.provision(ProvisionRequest("offline", "30m"))
        assert await budget_used(svc.store, "alice") == 0
        lease = await svc.provision(ProvisionRequest("busybox", "40m"))
        assert abs(await budget_used(svc.store, "alice") - Decimal(40) / 60) < Decimal("0.001")
        with pytest.raises(QuotaError, match="daily budget"):
            await svc.provision(ProvisionRequest("busybox", "30m"))
        await svc.release(lease.id)
        assert await budget_used(svc.store, "alice") < Decimal("0.01")  # seconds were used
        again = await svc.provision(ProvisionRequest("busybox", "50m"))
        assert again.status is LeaseStatus.RUNNING
    finally:
        await svc.close()


async def test_provision_pulls_an_image_it_lacks(
    settings: Settings, pull_image: str, docker: aiodocker.Docker
) -> None:
    pulling = settings.model_copy(deep=True)
    busybox = settings.images["busybox"]
    pulling.images["pulled"] = busybox.model_copy(update={"ref": pull_image})
    svc = LeaseService.open(pulling, user="alice")
    statuses: list[LeaseStatus] = []
    progress: list[PullProgress] = []
    try:
        lease = await svc.provision(
            ProvisionRequest("pulled", "10m"),
            on_progress=progress.append,
            on_status=lambda x: statuses.append(x.status),
        )
        assert lease.status is LeaseStatus.RUNNING
        assert statuses == [
            LeaseStatus.PENDING,
            LeaseStatus.PULLING,
            LeaseStatus.CREATING,
            LeaseStatus.RUNNING,
        ]
        assert any(p.status == "Downloading" and p.total > 0 for p in progress)
        events = [e.type for e in await events_for(svc.store, lease.id)]
        assert events == [
            EventType.CREATED,
            EventType.PULLING,
            EventType.CREATING,
            EventType.RUNNING,
        ]
        assert lease.docker_id
        info = await docker.containers.container(lease.docker_id).show()
        assert info["Config"]["Image"] == pull_image
    finally:
        await svc.close()


async def test_an_image_removed_after_it_was_seen_is_pulled_again(
    settings: Settings, pull_image: str, docker: aiodocker.Docker
) -> None:
    pulling = settings.model_copy(deep=True)
    pulling.images["pulled"] = settings.images["busybox"].model_copy(update={"ref": pull_image})
    svc = LeaseService.open(pulling, user="alice")
    try:
        first = await svc.provision(ProvisionRequest("pulled", "10m"))
        assert first.docker_id
        # Someone removes the image (and the container using it) behind the service's back,
        # within the time the engine takes a seen image as present.
        await docker.containers.container(first.docker_id).delete(force=True)
        await docker.images.delete(pull_image, force=True)
        second = await svc.provision(ProvisionRequest("pulled", "10m"))
        assert second.status is LeaseStatus.RUNNING
        assert await svc.engine.image_present(pull_image)
    finally:
        await svc.close()
