"""LeaseStore against the real redis-server: the bounded optimistic update and reindex."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
import redis.asyncio as aioredis

from containerlease_tui.models import EventType, Lease, LeaseStatus, utcnow
from containerlease_tui.store import (
    MAX_WATCH_CONFLICTS,
    LeaseBusy,
    LeaseContended,
    LeaseNotFound,
    LeaseStore,
)
from tests.store_helpers import events_for


@pytest.fixture
def other_client(redis_url: str) -> Iterator[redis.Redis]:
    """A second, independent connection: the other writer."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


async def _insert(store: LeaseStore) -> Lease:
    now = utcnow()
    lease = Lease(
        name=f"t-{secrets.token_hex(3)}",
        owner="alice",
        image="busybox",
        image_ref="containerlease-test:busybox",
        created_at=now,
        expires_at=now + timedelta(hours=1),
        hourly_rate="0.36",
    )
    await store.insert(lease, max_per_user=100, max_total=100)
    return lease


async def test_update_under_endless_contention_raises_lease_busy(
    store: LeaseStore, other_client: redis.Redis
) -> None:
    """Another client writes the watched record between every read and every EXEC: the
    update gives up after MAX_WATCH_CONFLICTS attempts with LeaseBusy (it used to retry
    forever), and nothing of its own change is written."""
    lease = await _insert(store)
    key = store.keys.lease(lease.id)
    attempts = 0

    def mutate(current: Lease) -> Lease:
        nonlocal attempts
        attempts += 1
        other_client.hset(key, "touched", str(attempts))  # invalidates this attempt's WATCH
        return current.transition(LeaseStatus.RELEASED)

    with pytest.raises(LeaseBusy, match="kept changing") as caught:
        await store.update(lease.id, mutate, event=EventType.RELEASED)

    assert isinstance(caught.value, LeaseContended)

    assert attempts == MAX_WATCH_CONFLICTS
    assert other_client.hget(key, "touched") == str(MAX_WATCH_CONFLICTS)
    stored = await store.get(lease.id)
    assert stored is not None and stored.status is LeaseStatus.PENDING
    assert [e.type for e in await events_for(store, lease.id)] == [EventType.CREATED]


async def test_update_retries_through_a_few_conflicts(
    store: LeaseStore, other_client: redis.Redis
) -> None:
    """Contention that stops is ridden out: the change lands on the next clean attempt."""
    lease = await _insert(store)
    key = store.keys.lease(lease.id)
    attempts = 0

    def mutate(current: Lease) -> Lease:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            other_client.hset(key, "touched", str(attempts))
        return current.transition(LeaseStatus.RELEASED)

    updated = await store.update(lease.id, mutate, event=EventType.RELEASED)

    assert attempts == 4
    assert updated.status is LeaseStatus.RELEASED
    stored = await store.get(lease.id)
    assert stored is not None and stored.status is LeaseStatus.RELEASED


async def test_reindex_restores_deadline_and_indexes(
    store: LeaseStore, redis_client: aioredis.Redis
) -> None:
    lease = await _insert(store)
    k = store.keys
    for index in (k.deadlines, k.leases, k.owner(lease.owner), k.ids):
        await redis_client.zrem(index, lease.id)
    await redis_client.srem(k.active, lease.id)
    await redis_client.srem(k.active_owner(lease.owner), lease.id)
    before = await redis_client.hget(k.lease(lease.id), "data")

    assert (await store.reindex(lease.id)).id == lease.id

    assert await redis_client.zscore(k.deadlines, lease.id) == lease.expires_at.timestamp()
    assert await redis_client.zscore(k.leases, lease.id) == lease.created_at.timestamp()
    assert await redis_client.zscore(k.owner(lease.owner), lease.id) is not None
    assert await redis_client.zscore(k.ids, lease.id) == 0
    assert await redis_client.sismember(k.active, lease.id)
    assert await redis_client.sismember(k.active_owner(lease.owner), lease.id)
    assert await redis_client.hget(k.lease(lease.id), "data") == before
    assert [e.type for e in await events_for(store, lease.id)] == [EventType.CREATED]
    assert [found.id for found in await store.list_owner(lease.owner)] == [lease.id]


async def test_reindex_of_a_closed_lease_leaves_it_out_of_the_deadline_set(
    store: LeaseStore, redis_client: aioredis.Redis
) -> None:
    lease = await _insert(store)
    await store.update(lease.id, lambda current: current.transition(LeaseStatus.RELEASED))

    await store.reindex(lease.id)

    assert await redis_client.zscore(store.keys.deadlines, lease.id) is None
    assert not await redis_client.sismember(store.keys.active, lease.id)


async def test_reindex_of_a_missing_lease_raises_lease_not_found(store: LeaseStore) -> None:
    with pytest.raises(LeaseNotFound):
        await store.reindex("nosuchlease")
