"""The Store contract: what LeaseService and the reaper rely on, held against Redis and memory."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from containerlease_tui.models import (
    EventType,
    IllegalTransition,
    Lease,
    LeaseStatus,
    lease_hours,
    utcnow,
)
from containerlease_tui.store import (
    Charge,
    LeaseBusy,
    LeaseNotFound,
    NameTaken,
    QuotaExceeded,
    ReaperBeat,
    StoreError,
)
from containerlease_tui.store.events import acting_as
from containerlease_tui.store.protocol import Store

BIG = 1000


def make_lease(
    owner: str = "alice",
    name: str = "web",
    *,
    hours: float = 1.0,
    created: datetime | None = None,
    lease_id: str | None = None,
) -> Lease:
    created = created or utcnow()
    extra = {"id": lease_id} if lease_id else {}
    return Lease(
        name=name,
        owner=owner,
        image="busybox",
        image_ref="busybox:latest",
        created_at=created,
        expires_at=created + timedelta(hours=hours),
        hourly_rate=Decimal("0.10"),
        **extra,
    )


async def put(store: Store, lease: Lease, **quota: object) -> Lease:
    limits: dict[str, object] = {"max_per_user": BIG, "max_total": BIG, **quota}
    await store.insert(lease, detail="busybox for 1h", **limits)  # type: ignore[arg-type]
    return lease


async def events_of(store: Store, lease_id: str) -> list[EventType]:
    batch = await store.follow_events("0", count=10_000)
    return [e.type for e in batch.events if e.lease == lease_id]


# --- insert, get, lists ----------------------------------------------------------------------


async def test_insert_then_read_back_every_way(store: Store) -> None:
    t0 = utcnow()
    a = await put(store, make_lease("alice", "a", created=t0 - timedelta(seconds=2)))
    b = await put(store, make_lease("alice", "b", created=t0 - timedelta(seconds=1)))
    c = await put(store, make_lease("bob", "c", created=t0))
    assert await store.get(a.id) == a
    assert await store.get("nosuchid") is None
    assert await store.get_many([c.id, "nosuchid", a.id]) == [c, a]
    assert await store.get_many([]) == []
    assert [x.id for x in await store.list_owner("alice")] == [b.id, a.id]  # newest first
    assert [x.id for x in await store.list_all()] == [c.id, b.id, a.id]
    assert [x.id for x in await store.list_all(limit=2)] == [c.id, b.id]
    assert await store.list_owner("nobody") == []
    assert await store.ids_with_prefix(a.id[:6]) == [a.id]
    assert await store.ids_with_prefix(a.id) == [a.id]
    assert await store.active_ids() == sorted([a.id, b.id, c.id])
    assert await events_of(store, a.id) == [EventType.CREATED]
    batch = await store.follow_events("0")
    created = next(e for e in batch.events if e.lease == a.id)
    assert (created.owner, created.detail) == ("alice", "busybox for 1h")


async def test_insert_refuses_a_duplicate_id_and_an_active_name(store: Store) -> None:
    first = await put(store, make_lease("alice", "web"))
    with pytest.raises(StoreError, match="already exists"):
        await put(store, make_lease("alice", "other", lease_id=first.id))
    with pytest.raises(NameTaken) as taken:
        await put(store, make_lease("alice", "web"))
    assert taken.value.holder == first.id
    assert "alice already has an active lease named 'web'" in str(taken.value)
    await put(store, make_lease("bob", "web"))  # names are per owner
    await store.update(first.id, lambda x: x.transition(LeaseStatus.RELEASED))
    await put(store, make_lease("alice", "web"))  # a closed lease gives its name back
    assert len(await store.list_owner("alice")) == 2


async def test_insert_checks_the_quotas_and_writes_nothing_when_refused(store: Store) -> None:
    await put(store, make_lease("alice", "a1"), max_per_user=2, max_total=3)
    await put(store, make_lease("alice", "a2"), max_per_user=2, max_total=3)
    refused = make_lease("alice", "a3")
    with pytest.raises(QuotaExceeded, match="alice already has 2 active leases"):
        await put(store, refused, max_per_user=2, max_total=3)
    assert await store.get(refused.id) is None
    assert await events_of(store, refused.id) == []
    await put(store, make_lease("bob", "b1"), max_per_user=2, max_total=3)
    with pytest.raises(QuotaExceeded, match="the box already has 3 active leases"):
        await put(store, make_lease("carol", "c1"), max_per_user=2, max_total=3)
    one = make_lease("dave", "d1")
    await put(store, one, max_per_user=1, max_total=BIG)
    with pytest.raises(QuotaExceeded, match=r"dave already has 1 active lease \(the limit\)"):
        await put(store, make_lease("dave", "d2"), max_per_user=1, max_total=BIG)
    await store.update(one.id, lambda x: x.transition(LeaseStatus.EXPIRED))
    await put(store, make_lease("dave", "d2"), max_per_user=1, max_total=BIG)  # counts active


async def test_budget_is_booked_by_insert_and_update_and_refunded(store: Store) -> None:
    budget = Decimal(3)
    first = await put(store, make_lease(hours=2), budget_hours=budget)
    with pytest.raises(QuotaExceeded, match="daily budget reached: alice may book 3"):
        await put(store, make_lease("alice", "two", hours=1.5), budget_hours=budget)
    await put(store, make_lease("alice", "exact", hours=1), budget_hours=budget)  # exactly 3
    with pytest.raises(QuotaExceeded, match="daily budget reached"):
        await store.update(
            first.id,
            lambda x: x.model_copy(update={"expires_at": x.expires_at + timedelta(hours=1)}),
            charge=Charge("alice", lease_hours(timedelta(hours=1)), budget),
        )
    assert await store.get(first.id) == first  # nothing written
    await store.update(
        first.id,
        lambda x: x.transition(LeaseStatus.RELEASED),
        charge=Charge("alice", -lease_hours(timedelta(hours=2)), day=first.created_at),
    )
    await put(store, make_lease("alice", "again", hours=2), budget_hours=budget)
    await put(store, make_lease("bob", "other", hours=3), budget_hours=budget)  # per owner


# --- updates ---------------------------------------------------------------------------------


async def test_update_follows_the_state_machine_and_writes_events(store: Store) -> None:
    lease = await put(store, make_lease())
    for target, event in (
        (LeaseStatus.PULLING, EventType.PULLING),
        (LeaseStatus.CREATING, EventType.CREATING),
        (LeaseStatus.RUNNING, EventType.RUNNING),
    ):
        lease = await store.update(
            lease.id, functools.partial(Lease.transition, target=target), event=event
        )
        assert lease.status is target
    assert await store.get(lease.id) == lease
    with pytest.raises(IllegalTransition):
        await store.update(
            lease.id, lambda x: x.transition(LeaseStatus.PENDING), event=EventType.FAILED
        )
    assert (await store.get(lease.id)) == lease  # nothing written, no event
    assert await events_of(store, lease.id) == [
        EventType.CREATED,
        EventType.PULLING,
        EventType.CREATING,
        EventType.RUNNING,
    ]
    closed = await store.update(
        lease.id,
        lambda x: x.transition(LeaseStatus.EXPIRED),
        event=EventType.EXPIRED,
        also=[(EventType.REAPED, "container removed")],
    )
    assert closed.status is LeaseStatus.EXPIRED and closed.ended_at is not None
    assert (await events_of(store, lease.id))[-2:] == [EventType.EXPIRED, EventType.REAPED]
    assert await store.active_ids() == []
    assert (
        await store.deadlines_between(utcnow() - timedelta(days=1), utcnow() + timedelta(days=1))
        == []
    )
    with pytest.raises(IllegalTransition):
        await store.update(lease.id, lambda x: x.transition(LeaseStatus.RUNNING))
    with pytest.raises(LeaseNotFound):
        await store.update("nosuchid", lambda x: x)


async def test_update_with_unclaimed_is_refused_while_a_reaper_holds_the_lease(
    store: Store,
) -> None:
    lease = await put(store, make_lease())
    token = await store.claim(lease.id, timedelta(seconds=30))
    assert token is not None
    with pytest.raises(LeaseBusy, match="being removed by a reaper"):
        await store.update(lease.id, lambda x: x, unclaimed=True)
    await store.update(lease.id, lambda x: x)  # without the flag the claim does not matter
    assert await store.release_claim(lease.id, token)
    await store.update(lease.id, lambda x: x, unclaimed=True)


# --- deadlines -------------------------------------------------------------------------------


async def test_deadlines_due_next_between_postpone_forget(store: Store) -> None:
    now = utcnow().replace(microsecond=0)
    soon = await put(store, make_lease("alice", "soon", created=now - timedelta(hours=1), hours=1))
    later = await put(store, make_lease("alice", "later", created=now, hours=2))
    assert await store.due(now) == [soon.id]
    assert await store.due(now - timedelta(seconds=1)) == []
    assert await store.next_deadline() == soon.expires_at
    rows = await store.deadlines_between(now, now + timedelta(hours=2))
    assert rows == [(soon.id, soon.expires_at), (later.id, later.expires_at)]
    assert await store.deadlines_between(now + timedelta(seconds=1), now + timedelta(hours=1)) == []
    await store.postpone(soon.id, now + timedelta(hours=3))
    assert await store.due(now) == []
    assert await store.next_deadline() == later.expires_at
    await store.forget_deadline(later.id)
    await store.postpone(later.id, now)  # never re-adds a forgotten deadline
    assert [x for x, _ in await store.deadlines_between(now, now + timedelta(days=1))] == [soon.id]
    # An update of an open lease puts its deadline back where the record says.
    await store.update(later.id, lambda x: x)
    assert await store.next_deadline() == later.expires_at
    many = [
        await put(store, make_lease("bob", f"m{i}", created=now - timedelta(hours=2)))
        for i in range(3)
    ]
    assert len(await store.due(now, limit=2)) == 2
    assert set(await store.due(now)) == {x.id for x in many}


async def test_reindex_puts_an_open_lease_back_and_leaves_a_closed_one_out(store: Store) -> None:
    now = utcnow().replace(microsecond=0)
    lease = await put(store, make_lease("alice", "lost", created=now - timedelta(hours=2)))
    closed = await put(store, make_lease("alice", "done", created=now - timedelta(hours=2)))
    await store.update(closed.id, lambda x: x.transition(LeaseStatus.RELEASED))
    await store.forget_deadline(lease.id)
    assert await store.due(now) == []
    before = await events_of(store, lease.id)
    again = await store.reindex(lease.id)
    assert again.expires_at == lease.expires_at
    assert await store.due(now) == [lease.id]
    assert await events_of(store, lease.id) == before  # no event, no rewrite
    await store.reindex(closed.id)
    assert await store.due(now) == [lease.id]
    with pytest.raises(LeaseNotFound):
        await store.reindex("nosuch00")


async def test_one_guardian_lock_token_bound(store: Store) -> None:
    token = await store.take_guardian(timedelta(seconds=5))
    assert token
    assert await store.take_guardian(timedelta(seconds=5)) is None
    assert await store.keep_guardian(token, timedelta(seconds=5))
    assert not await store.keep_guardian("not-the-token", timedelta(seconds=5))
    assert not await store.drop_guardian("not-the-token")
    assert await store.drop_guardian(token)
    assert not await store.keep_guardian(token, timedelta(seconds=5))
    assert await store.take_guardian(timedelta(seconds=5))


async def test_the_epoch_is_written_once_and_kept(store: Store) -> None:
    token, created = await store.epoch()
    assert token and created
    assert await store.epoch() == (token, False)
    assert await store.epoch() == (token, False)


# --- claims, warnings, provisioning ----------------------------------------------------------


async def test_claims_are_exclusive_token_bound_and_expire(store: Store) -> None:
    token = await store.claim("l1", timedelta(seconds=1))
    assert token
    assert await store.extend_claim("l1", token, timedelta(seconds=3))
    assert await store.claim("l1", timedelta(seconds=5)) is None
    assert not await store.release_claim("l1", "not-the-token")
    assert not await store.extend_claim("l1", "not-the-token", timedelta(seconds=5))
    assert await store.claim("l2", timedelta(seconds=5))  # per lease
    await asyncio.sleep(1.2)
    assert await store.claim("l1", timedelta(seconds=5)) is None  # extended: still held
    assert await store.extend_claim("l1", token, timedelta(milliseconds=200))
    await asyncio.sleep(0.5)
    again = await store.claim("l1", timedelta(seconds=5))  # expired: free again
    assert again and again != token
    assert not await store.extend_claim("l1", token, timedelta(seconds=5))
    assert await store.release_claim("l1", again)
    assert not await store.release_claim("l1", again)
    assert await store.claim("l1", timedelta(seconds=5))


async def test_warn_once_per_lease_and_point(store: Store) -> None:
    assert await store.warn_once("l1", timedelta(minutes=5), timedelta(minutes=10))
    assert not await store.warn_once("l1", timedelta(minutes=5), timedelta(minutes=10))
    assert await store.warn_once("l1", timedelta(minutes=1), timedelta(minutes=10))
    assert await store.warn_once("l2", timedelta(minutes=5), timedelta(minutes=10))


async def test_provisioning_keys(store: Store) -> None:
    assert await store.provisioning_start("l1", timedelta(seconds=1))
    await store.provisioning_beat("l1", timedelta(seconds=3))
    assert not await store.provisioning_start("l1", timedelta(seconds=5))
    assert await store.provisioning_alive(["l1", "l2"]) == {"l1"}
    assert await store.provisioning_alive([]) == set()
    await asyncio.sleep(1.2)
    assert await store.provisioning_alive(["l1"]) == {"l1"}  # the beat kept it
    await store.provisioning_beat("l1", timedelta(milliseconds=200))
    await asyncio.sleep(0.5)
    assert await store.provisioning_alive(["l1"]) == set()
    await store.provisioning_beat("l1", timedelta(seconds=5))  # never revives it
    assert await store.provisioning_alive(["l1"]) == set()
    assert await store.provisioning_start("l2", timedelta(seconds=5))
    await store.provisioning_done("l2")
    assert await store.provisioning_alive(["l2"]) == set()
    assert await store.provisioning_start("l2", timedelta(seconds=5))


# --- events ----------------------------------------------------------------------------------


async def test_events_after_a_cursor(store: Store) -> None:
    start = await store.last_event_id()
    lease = await put(store, make_lease())
    first = await store.last_event_id()
    assert first != start
    second = await store.emit(EventType.EXPIRING, lease, detail="in 5 min")
    third = await store.emit(EventType.REAPED, "orphan1", "bob", "orphan container x removed")
    assert await store.last_event_id() == third
    batch = await store.follow_events(first)
    assert [(e.id, e.type) for e in batch.events] == [
        (second, EventType.EXPIRING),
        (third, EventType.REAPED),
    ]
    assert batch.cursor == third
    assert (batch.events[0].owner, batch.events[0].detail) == ("alice", "in 5 min")
    assert (batch.events[1].lease, batch.events[1].owner) == ("orphan1", "bob")
    assert abs((batch.events[0].at - utcnow()).total_seconds()) < 60
    assert (await store.follow_events(first, count=1)).cursor == second
    empty = await store.follow_events(third)
    assert (empty.events, empty.cursor) == ([], third)
    t0 = asyncio.get_running_loop().time()
    waited = await store.follow_events(third, block_ms=200)
    assert (waited.events, waited.cursor) == ([], third)
    assert asyncio.get_running_loop().time() - t0 >= 0.15
    assert (await store.follow_events("$")).events == []  # "$": only what comes next


async def test_a_blocking_read_wakes_on_a_new_event(store: Store) -> None:
    cursor = await store.last_event_id()
    reader = asyncio.create_task(store.follow_events(cursor, block_ms=2000))
    await asyncio.sleep(0.1)
    assert not reader.done()
    new = await store.emit(EventType.RELEASED, "l1", "alice", "by alice")
    batch = await asyncio.wait_for(reader, 5)
    assert [e.id for e in batch.events] == [new] and batch.cursor == new
    follower = asyncio.create_task(store.follow_events("$", block_ms=2000))
    await asyncio.sleep(0.1)
    newer = await store.emit(EventType.EXTENDED, "l1", "alice", "by 1h")
    assert [e.id for e in (await asyncio.wait_for(follower, 5)).events] == [newer]


async def test_event_details_are_cut_at_500_characters(store: Store) -> None:
    cursor = await store.last_event_id()
    await store.emit(EventType.FAILED, "l1", "alice", "x" * 600)
    (event,) = (await store.follow_events(cursor)).events
    assert event.detail == "x" * 500


async def test_events_name_their_actor(store: Store) -> None:
    cursor = await store.last_event_id()
    lease = await put(store, make_lease())  # the insert: by its owner
    with acting_as("carol"):
        await store.update(
            lease.id,
            lambda x: x.transition(LeaseStatus.RELEASED),
            event=EventType.RELEASED,
            detail="by carol",
        )
        await store.emit(EventType.EXTENDED, lease, detail="by 1h")
    await store.emit(EventType.REAPED, lease)  # nobody said: a reaper's event is the reaper's
    await store.emit(EventType.STOPPED, lease)  # anything else: the owner's
    events = (await store.follow_events(cursor)).events
    assert [(e.type, e.actor) for e in events] == [
        (EventType.CREATED, "alice"),
        (EventType.RELEASED, "carol"),
        (EventType.EXTENDED, "carol"),
        (EventType.REAPED, "reaper"),
        (EventType.STOPPED, "alice"),
    ]
    assert events[1].to_public()["actor"] == "carol"


async def test_event_history_newest_last_since_and_capped(store: Store) -> None:
    empty = await store.event_history()
    assert (empty.events, empty.cursor, empty.oldest, empty.length) == ([], "0-0", None, 0)
    before = utcnow() - timedelta(seconds=1)
    ids = [await store.emit(EventType.EXTENDED, f"l{i}", "alice", f"by {i}m") for i in range(5)]
    history = await store.event_history()
    assert [e.id for e in history.events] == ids
    assert history.cursor == ids[-1] and history.length == 5 and not history.trimmed
    assert history.oldest is not None and before <= history.oldest <= utcnow()
    assert [e.id for e in (await store.event_history(limit=2)).events] == ids[-2:]
    assert [e.id for e in (await store.event_history(since=before)).events] == ids
    later = await store.event_history(since=utcnow() + timedelta(minutes=1))
    assert later.events == [] and later.cursor == ids[-1]


async def test_budget_used_reads_the_days_bookings(store: Store) -> None:
    now = utcnow()
    assert await store.budget_used("alice", now) == 0
    first = await put(store, make_lease(hours=2), budget_hours=Decimal(8))
    await put(store, make_lease("alice", "two", hours=0.5), budget_hours=Decimal(8))
    assert await store.budget_used("alice", now) == Decimal("2.5")
    assert await store.budget_used("bob", now) == 0
    assert await store.budget_used("alice", now - timedelta(days=1)) == 0
    await store.update(
        first.id,
        lambda x: x.transition(LeaseStatus.RELEASED),
        charge=Charge("alice", -lease_hours(timedelta(hours=1)), day=first.created_at),
    )
    assert await store.budget_used("alice", now) == Decimal("1.5")


async def test_claimed_says_which_leases_a_reaper_holds(store: Store) -> None:
    assert await store.claimed([]) == set()
    token = await store.claim("l1", timedelta(seconds=30))
    assert token is not None
    assert await store.claimed(["l1", "l2"]) == {"l1"}
    assert await store.release_claim("l1", token)
    assert await store.claimed(["l1", "l2"]) == set()


# --- heartbeats ------------------------------------------------------------------------------


async def test_heartbeats_report_and_expire(store: Store) -> None:
    assert await store.reapers() == []
    beat = ReaperBeat(host="box", pid=1, mode="in-app", ttl_seconds=1.5)
    other = ReaperBeat(host="box", pid=2, ttl_seconds=30)
    before = datetime.now(UTC)
    await store.heartbeat(beat)
    await store.heartbeat(other)
    assert beat.last_seen_at >= before - timedelta(seconds=1)  # refreshed by the heartbeat
    alive = await store.reapers()
    assert [(b.pid, b.mode) for b in alive] == [(1, "in-app"), (2, "headless")]
    assert alive[0] == beat
    await asyncio.sleep(2.0)
    assert [b.pid for b in await store.reapers()] == [2]  # pid 1's heartbeat expired
    await store.drop_heartbeat(other)
    assert await store.reapers() == []
    await store.ping()


# --- unreadable records and events (issue 13) -------------------------------------------------


async def corrupt_record(store: Store, lease: Lease) -> None:
    """Make ``lease``'s record unreadable (a status from a newer version), as it would be in
    Redis; the lease stays in its indexes."""
    from containerlease_tui.store import LeaseStore
    from tests.fakes.memory_store import MemoryStore

    if isinstance(store, MemoryStore):
        store.put_corrupt(
            lease.id,
            "status: Input should be 'pending', 'pulling', 'creating', 'running', 'stopped', "
            "'released', 'expired' or 'failed'",
            owner=lease.owner,
            deadline=lease.expires_at,
            created=lease.created_at,
        )
        return
    assert isinstance(store, LeaseStore)
    data = lease.model_dump_json().replace('"status":"pending"', '"status":"hibernating"')
    await store.redis.hset(store.keys.lease(lease.id), "data", data)


async def unreadable_event(store: Store) -> str:
    from containerlease_tui.store import LeaseStore
    from tests.fakes.memory_store import MemoryStore

    if isinstance(store, MemoryStore):
        return store.add_unreadable_event()
    assert isinstance(store, LeaseStore)
    entry: str = await store.redis.xadd(store.keys.events, {"type": b"\xff", "lease": b"\xfe"})
    return entry


async def test_an_unreadable_record_is_skipped_and_named(store: Store) -> None:
    from containerlease_tui.store import CorruptRecord

    good = await put(store, make_lease(name="good"))
    bad = await put(store, make_lease(name="bad", created=utcnow() + timedelta(seconds=1)))
    await corrupt_record(store, bad)
    with pytest.raises(CorruptRecord) as caught:
        await store.get(bad.id)
    assert caught.value.lease_id == bad.id and "status" in caught.value.reason
    many = await store.get_many([good.id, bad.id, "nosuchid"])
    assert [x.id for x in many] == [good.id] and many.skipped_ids == {bad.id}
    for _ in range(2):  # an unreadable record is not a gone one: it stays listed
        listed = await store.list_all()
        assert [x.id for x in listed] == [good.id] and listed.skipped_ids == {bad.id}
        owned = await store.list_owner("alice")
        assert [x.id for x in owned] == [good.id] and owned.skipped_ids == {bad.id}
    with pytest.raises(CorruptRecord):
        await store.update(bad.id, lambda x: x)
    assert bad.id in await store.due(bad.expires_at)
    later = bad.expires_at + timedelta(minutes=5)
    await store.postpone(bad.id, later)
    assert bad.id not in await store.due(bad.expires_at)
    assert bad.id in await store.ids_with_prefix(bad.id[:4])


async def test_an_unreadable_event_is_stepped_over(store: Store) -> None:
    lease = await put(store, make_lease())
    start = await store.last_event_id()
    bad = await unreadable_event(store)
    assert await store.last_event_id() == bad
    await store.emit(EventType.EXTENDED, lease, detail="after")
    batch = await store.follow_events(after=start, count=10)
    assert batch.skipped == [bad]
    assert [e.type for e in batch.events] == [EventType.EXTENDED]
    again = await store.follow_events(after=batch.cursor, block_ms=1)
    assert again.events == [] and again.skipped == []
