"""Issue 15 item 3 against the real Redis: the reaper's expiry warnings are relative to the
lease's length (never at creation), one per point, re-armed by an extension."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from containerlease_tui.config import ReaperSettings, Settings
from containerlease_tui.models import EventType, Lease, LeaseStatus, Resources, utcnow
from containerlease_tui.reaper.context import PassResult, ReaperContext
from containerlease_tui.reaper.expiry import ExpiryWarner
from containerlease_tui.store import LeaseStore
from tests.fakes import FakeRuntime
from tests.store_helpers import events_for

pytestmark = pytest.mark.integration

POINTS = [timedelta(minutes=10), timedelta(minutes=2), timedelta(seconds=30)]


def _warner(settings: Settings, store: LeaseStore) -> ExpiryWarner:
    cfg = settings.model_copy(update={"reaper": ReaperSettings(warnings=POINTS)})
    ctx = ReaperContext(
        cfg, store, FakeRuntime(), dry_run=False, log=logging.getLogger("test-expiry")
    )
    return ExpiryWarner(ctx)


async def _lease(store: LeaseStore, length: timedelta) -> Lease:
    now = utcnow()
    lease = Lease(
        name="warned",
        owner="alice",
        image="busybox",
        image_ref="busybox:latest",
        resources=Resources(cpus=1.0, memory=64 * 1024**2),
        status=LeaseStatus.PENDING,
        created_at=now,
        expires_at=now + length,
        hourly_rate=Decimal("0.01"),
        host="test",
    )
    await store.insert(lease, max_per_user=100, max_total=100)
    return lease


async def _warnings(store: LeaseStore, lease: Lease) -> list[str]:
    return [e.detail for e in await events_for(store, lease.id) if e.type is EventType.EXPIRING]


async def test_a_ten_minute_lease_is_not_warned_at_creation_then_at_2_min_and_30_s(
    settings: Settings, store: LeaseStore
) -> None:
    warner = _warner(settings, store)
    lease = await _lease(store, timedelta(minutes=10))
    for left in (600, 599, 300, 121):
        await warner.warn(lease.expires_at - timedelta(seconds=left), PassResult())
    assert await _warnings(store, lease) == []
    await warner.warn(lease.expires_at - timedelta(seconds=119.5), PassResult())
    await warner.warn(lease.expires_at - timedelta(seconds=100), PassResult())  # once per point
    await warner.warn(lease.expires_at - timedelta(seconds=29.5), PassResult())
    assert await _warnings(store, lease) == ["expires in 2 min", "expires in 30 s"]


async def test_a_one_minute_lease_is_warned_and_an_extension_re_arms_the_points(
    settings: Settings, store: LeaseStore
) -> None:
    warner = _warner(settings, store)
    lease = await _lease(store, timedelta(minutes=1))
    await warner.warn(lease.expires_at - timedelta(seconds=29.5), PassResult())
    assert await _warnings(store, lease) == ["expires in 30 s"]
    # Extended by 2 minutes: a new deadline; its 30 s point warns again (a fresh reaper too,
    # so it is the store's record of what was warned that allows it, not the reaper's memory).
    extended = await store.update(
        lease.id, lambda x: x.model_copy(update={"expires_at": x.expires_at + timedelta(minutes=2)})
    )
    await _warner(settings, store).warn(extended.expires_at - timedelta(seconds=29.5), PassResult())
    assert await _warnings(store, lease) == ["expires in 30 s", "expires in 30 s"]


async def test_next_moments_include_a_short_leases_own_point(
    settings: Settings, store: LeaseStore
) -> None:
    warner = _warner(settings, store)
    lease = await _lease(store, timedelta(seconds=40))  # its point: 10 s before the end
    moments = await warner.next_moments(lease.expires_at - timedelta(seconds=12))
    assert lease.expires_at - timedelta(seconds=10) in moments
