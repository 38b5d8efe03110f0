"""Issue 13, items 2, 3 and 7, against the real engine and redis-server: bad records and bad
event entries never stop reaping; engine actions by a record's ``docker_id`` touch only our own
containers; a lost reply to a non-idempotent write (the insert script, SET NX) is verified, not
blindly retried."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings
from containerlease_tui.engine import LABEL_INSTANCE, LABEL_LEASE, Engine
from containerlease_tui.models import EventType, Lease, LeaseStatus, Resources, utcnow
from containerlease_tui.reaper import Reaper
from containerlease_tui.store import CorruptRecord, LeaseStore
from tests.integration.test_cli import Cli
from tests.integration.test_reaper import (
    container_spec,
    make_many,
    recording_logger,
    retarget,
    running,
    tuned,
    wait_for,
)
from tests.integration.test_reaper import make_lease as make_running
from tests.store_helpers import events_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_containers")]

UNREADABLE = "unreadable lease record skipped"


def pending_lease(settings: Settings, owner: str = "alice", minutes: float = 5) -> Lease:
    image = settings.images["busybox"]
    now = utcnow()
    return Lease(
        name=f"t-{secrets.token_hex(3)}",
        owner=owner,
        image="busybox",
        image_ref=image.ref,
        resources=Resources(cpus=image.cpus, memory=image.memory, pids=image.pids),
        created_at=now,
        expires_at=now + timedelta(minutes=minutes),
        hourly_rate=image.hourly_rate,
    )


async def corrupt(client: aioredis.Redis, key: str, kind: str, lease: Lease) -> None:
    """Make the record at ``key`` unreadable in the way ``kind`` names."""
    if kind == "bad-json":
        await client.hset(key, "data", '{"id": "' + lease.id + '", "status": ')
    elif kind == "wrong-type":
        await client.delete(key)
        await client.set(key, "not a hash")
    elif kind == "newer-status":
        data = json.loads(lease.model_dump_json())
        data["status"] = "hibernating"  # a status from a newer version
        await client.hset(key, mapping={"data": json.dumps(data), "status": "hibernating"})
    elif kind == "not-utf8":
        await client.hset(key, "data", b'{"id": "\xff\xfe')
    else:  # pragma: no cover
        raise AssertionError(kind)


def warnings_about(log: logging.Logger, msg: str, lease_id: str | None = None) -> int:
    records = log.handlers[0].records  # type: ignore[attr-defined]
    return sum(
        r.getMessage() == msg
        and r.levelno >= logging.WARNING
        and (lease_id is None or getattr(r, "lease", None) == lease_id)
        for r in records
    )


# --- item 2: one bad record must not stop reaping ----------------------------------------------


@pytest.mark.parametrize("kind", ["bad-json", "wrong-type", "newer-status", "not-utf8"])
async def test_a_bad_record_does_not_stop_reaping(
    kind: str,
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
    config_file: Path,
) -> None:
    good = await make_many(10, settings, store, engine)
    # Two bad records: one due now (the reaping path), one due in 5 min (the warning path).
    soon, due = pending_lease(settings, minutes=5), pending_lease(settings, minutes=5)
    for lease in (soon, due):
        await store.insert(lease, max_per_user=10_000, max_total=10_000)
        await corrupt(redis_client, store.keys.lease(lease.id), kind, lease)
    first_due = utcnow().timestamp() - 1
    await redis_client.zadd(store.keys.deadlines, {due.id: first_due})
    with pytest.raises(CorruptRecord):
        await store.get(due.id)
    listed = await store.list_all()
    assert {x.id for x in good} <= {x.id for x in listed}
    assert listed.skipped_ids == {soon.id, due.id}

    await retarget(store, good, utcnow() + timedelta(seconds=1))
    deadline = utcnow() + timedelta(seconds=1)
    log = recording_logger()
    reaper = Reaper(settings, store, engine, mode="test", log=log)
    async with running(reaper):

        async def all_reaped() -> bool:
            current = await store.get_many([x.id for x in good])
            return all(x.status is LeaseStatus.EXPIRED for x in current)

        await wait_for(all_reaped, 30, "the 10 good leases to be reaped")
        lag = max(
            (x.ended_at - deadline).total_seconds()
            for x in await store.get_many([x.id for x in good])
            if x.ended_at
        )
        print(f"\n{kind}: 10 good leases reaped, last {lag:.2f}s after its deadline")
        passes = reaper.beat.passes

        async def more_passes() -> bool:
            return reaper.beat.passes >= passes + 3

        await wait_for(more_passes, 30, "three more reaper passes")
    for lease in good:
        assert lease.docker_id and await engine.inspect(lease.docker_id) is None
    # Logged once each (not once a pass), and postponed: the reaper does not spin on it.
    assert warnings_about(log, UNREADABLE, due.id) == 1
    assert warnings_about(log, UNREADABLE, soon.id) == 1
    score = await redis_client.zscore(store.keys.deadlines, due.id)
    # Moved on by at least one (jittered) interval. Not "> now": on a loaded box the last pass
    # may have postponed it to a moment that has passed by the time the reaper stops.
    floor = first_due + 0.8 * settings.reaper.interval.total_seconds()
    assert score is not None and score >= floor
    errors = [r for r in log.handlers[0].records if r.levelno >= logging.ERROR]  # type: ignore[attr-defined]
    assert not errors, [r.getMessage() for r in errors]

    # The CLI: `ls` and `ls --all` work, the bad ones are rows marked unreadable; doctor names them.
    cli = Cli(config_file)
    done = cli("ls")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    rows = cli.json("ls", "--all")
    assert isinstance(rows, list)
    by_id = {row["id"]: row for row in rows}
    assert {x.id for x in good} <= set(by_id)
    assert by_id[due.id]["status"] == by_id[soon.id]["status"] == "unreadable"
    table = cli("ls", "--all")
    assert table.returncode == 0, table.stderr
    assert any(due.id in line and "unreadable" in line for line in table.stdout.splitlines())
    doctor = cli.json("doctor")
    assert isinstance(doctor, dict)
    assert set(doctor["leases"]["unreadable"]) == {soon.id, due.id}


async def test_an_unreadable_event_ends_no_follower(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
) -> None:
    # A long poll interval: only the event follower can wake the reaper for the new lease.
    slow = tuned(settings, interval=timedelta(seconds=60), sweep_interval=timedelta(minutes=10))
    log = recording_logger()
    reaper = Reaper(slow, store, engine, mode="test", log=log)
    async with running(reaper):
        await asyncio.sleep(0.5)  # let the follower start reading after the current end
        bad = await redis_client.xadd(store.keys.events, {"type": b"\xff\xfe", "lease": b"\x80"})
        # The app's follower reads through the same store call: it steps over the entry.
        batch = await store.follow_events(after="0-0", count=10_000)
        assert bad in batch.skipped and batch.cursor >= bad
        assert await store.last_event_id() == bad  # the newest entry is the bad one: no error
        lease = await make_running(slow, store, engine, duration=timedelta(seconds=2))

        async def reaped() -> bool:
            current = await store.get(lease.id)
            return current is not None and current.status is LeaseStatus.EXPIRED

        took = await wait_for(reaped, 20, "the new lease to be reaped (woken by its event)")
        print(f"\nreaped {took:.2f}s after creation (interval 60 s): the follower survived")
    assert warnings_about(log, "unreadable event skipped") == 1


# --- item 3: act only on our own containers ---------------------------------------------------


async def foreign_container(
    settings: Settings, engine: Engine, labels: dict[str, str], extra: list[str]
) -> str:
    spec = container_spec(settings, f"foreign-{secrets.token_hex(4)}", labels)
    cid = await engine.create(spec)
    extra.append(cid)
    await engine.start(cid)
    return cid


async def forged_lease(store: LeaseStore, settings: Settings, cid: str, *, due: bool) -> Lease:
    """A running lease record whose ``docker_id`` names someone else's container."""
    lease = pending_lease(settings, minutes=60)
    await store.insert(lease, max_per_user=10_000, max_total=10_000)
    when = utcnow() - timedelta(seconds=1) if due else lease.expires_at
    return await store.update(
        lease.id,
        lambda x: (
            x.model_copy(update={"docker_id": cid, "expires_at": when})
            .transition(LeaseStatus.CREATING)
            .transition(LeaseStatus.RUNNING)
        ),
    )


async def test_a_forged_docker_id_leaves_the_container_alone(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    config_file: Path,
    cleanup_containers: list[str],
) -> None:
    prefix = settings.redis.key_prefix
    unlabelled = await foreign_container(settings, engine, {}, cleanup_containers)
    elsewhere = await foreign_container(
        settings, engine, {LABEL_LEASE: "abcdefgh", LABEL_INSTANCE: "other-box"}, cleanup_containers
    )
    # The reaper: the leases are closed, the containers they name keep running.
    reaped = [await forged_lease(store, settings, cid, due=True) for cid in (unlabelled, elsewhere)]
    log = recording_logger()
    result = await Reaper(settings, store, engine, mode="test", log=log).run_once()
    assert result.reaped == 2
    for lease, cid in zip(reaped, (unlabelled, elsewhere), strict=True):
        info = await engine.inspect(cid)
        assert info is not None and info.running, "someone else's container was touched"
        current = await store.get(lease.id)
        assert current is not None and current.status is LeaseStatus.EXPIRED
        detail = [e.detail for e in await events_for(store, lease.id) if e.type is EventType.REAPED]
        assert detail and "refused" in detail[0] and "left untouched" in detail[0]
        assert (
            warnings_about(log, "refused to act on a container that is not the lease's", lease.id)
            == 1
        )
    # `rm` and the container commands: refused with one line, nothing touched, lease unchanged.
    cli = Cli(config_file)
    owner = None
    for cid in (unlabelled, elsewhere):
        lease = await forged_lease(store, settings, cid, due=False)
        if owner is None:  # the CLI acts as the OS user running the tests
            owner = (cli.json("doctor"))["user"]  # type: ignore[index]
        await store.update(lease.id, lambda x, o=owner: x.model_copy(update={"owner": o}))
        for command in (["rm", lease.id], ["stop", lease.id], ["exec", lease.id, "true"]):
            done = cli(*command)
            assert done.returncode != 0, (command, done.stdout)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "refused" in lines[0], (command, done.stderr)
        info = await engine.inspect(cid)
        assert info is not None and info.running
        current = await store.get(lease.id)
        assert current is not None and current.status is LeaseStatus.RUNNING
    assert prefix  # the installation both checks compare against


# --- item 7: no repeated non-idempotent writes ------------------------------------------------


class ReplyDropper:
    """A TCP proxy in front of Redis that, for a request containing all of ``needles``,
    forwards the request and then drops the connection instead of passing the reply back
    (the first ``times`` such requests; ``times=None``: every one)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.needles: tuple[bytes, ...] = ()
        self.times: int | None = 0
        self.dropped = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def arm(self, *needles: bytes, times: int | None = 1) -> None:
        self.needles, self.times, self.dropped = needles, times, 0

    def _match(self, data: bytes) -> bool:
        if not self.needles or not all(n in data for n in self.needles):
            return False
        return self.times is None or self.dropped < self.times

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_r, up_w = await asyncio.open_connection(*self.target)
            doomed = asyncio.Event()

            async def up() -> None:
                with contextlib.suppress(OSError):
                    while data := await reader.read(65536):
                        if self._match(data):
                            self.dropped += 1
                            doomed.set()  # before forwarding: the reply comes after
                        up_w.write(data)
                        await up_w.drain()
                up_w.close()

            async def down() -> None:
                with contextlib.suppress(OSError):
                    while data := await up_r.read(65536):
                        if doomed.is_set():
                            break  # the request went through; its reply is lost
                        writer.write(data)
                        await writer.drain()
                writer.close()
                up_w.close()

            for coro in (up(), down()):
                task = asyncio.create_task(coro)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        self._server = await asyncio.start_server(handle, sock=self._sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def through_dropper(settings: Settings, redis_url: str):  # type: ignore[no-untyped-def]
    target = urlsplit(redis_url)
    proxy = ReplyDropper((target.hostname or "127.0.0.1", target.port or 6379))
    await proxy.start()
    db = target.path.strip("/") or "0"
    cut = settings.model_copy(
        update={
            "redis": settings.redis.model_copy(
                update={"url": f"redis://127.0.0.1:{proxy.port}/{db}", "tls_ca": None}
            )
        }
    )
    cut_store = LeaseStore.from_settings(cut)
    try:
        yield proxy, cut_store
    finally:
        await cut_store.close()
        await proxy.stop()


async def test_a_lost_reply_to_the_insert_is_verified_not_retried_blindly(
    settings: Settings,
    store: LeaseStore,
    redis_url: str,
) -> None:
    if urlsplit(redis_url).scheme != "redis":
        pytest.skip("the reply dropper speaks plain TCP")
    await store.insert(pending_lease(settings), max_per_user=100, max_total=300)  # script cached
    async with through_dropper(settings, redis_url) as (proxy, cut):
        # One lost reply: the client resends the script, which finds the record: ours.
        lease = pending_lease(settings)
        proxy.arm(b"EVALSHA", lease.id.encode(), times=1)
        await cut.insert(lease, max_per_user=100, max_total=300)
        assert proxy.dropped == 1
        # Every reply lost: the read-back finds the record written, so no "unreachable".
        other = pending_lease(settings)
        proxy.arm(b"EVALSHA", other.id.encode(), times=None)
        await cut.insert(other, max_per_user=100, max_total=300)
        assert proxy.dropped >= 2  # the first send and the client's own resends
        for written in (lease, other):
            assert await store.get(written.id) == written
            created = [
                e for e in await events_for(store, written.id) if e.type is EventType.CREATED
            ]
            assert len(created) == 1  # written once
        # Someone else's record under the same id is still refused.
        proxy.arm()
        clash = lease.model_copy(update={"name": "another"})
        with pytest.raises(Exception, match="already exists"):
            await cut.insert(clash, max_per_user=100, max_total=300)


async def test_a_lost_reply_to_set_nx_is_verified(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_url: str,
) -> None:
    if urlsplit(redis_url).scheme != "redis":
        pytest.skip("the reply dropper speaks plain TCP")
    ttl = timedelta(seconds=30)
    async with through_dropper(settings, redis_url) as (proxy, cut):
        cases: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]]
        cases = [
            (
                "provisioning",
                lambda: cut.provisioning_start("lease001", ttl),
                lambda: store.provisioning_start("lease001", ttl),
            ),
            ("claim", lambda: cut.claim("lease002", ttl), lambda: store.claim("lease002", ttl)),
            ("guardian", lambda: cut.take_guardian(ttl), lambda: store.take_guardian(ttl)),
        ]
        for what, ours, theirs in cases:
            proxy.arm(b"NX", times=1)
            won = await ours()
            assert proxy.dropped == 1, what
            assert won, f"{what}: refused by its own resent SET NX"
            assert not await theirs(), f"{what}: still exclusive"
        # The whole path of the issue: a provision whose claim reply is lost still runs.
        from containerlease_tui.leases import LeaseService, ProvisionRequest

        service = LeaseService(cut.settings, cut, engine, user="alice", admin=False)
        lease = await service.submit(ProvisionRequest(image="busybox", duration="1h"))
        proxy.arm(b"NX", lease.id.encode(), times=1)
        done = await service.complete(lease.id)
        assert proxy.dropped == 1
        assert done.status is LeaseStatus.RUNNING
