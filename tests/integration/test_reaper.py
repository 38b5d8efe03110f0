"""The reaper against the real Docker engine and redis-server.

Leases are made by a small helper (insert the record, create and start a labelled container,
record it as running), so these tests depend only on the store and the engine. Waits poll a
condition with a deadline; nothing relies on a fixed sleep for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiodocker
import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings
from containerlease_tui.engine import (
    ContainerSpec,
    Engine,
)
from containerlease_tui.labels import labels_for as real_labels_for
from containerlease_tui.models import (
    EventType,
    FailureKind,
    Lease,
    LeaseStatus,
    Resources,
    utcnow,
)
from containerlease_tui.reaper import NO_REAPER, SWEEP_YOUNG, Reaper, reaper_status
from containerlease_tui.store import LeaseStore, ReaperBeat
from tests.store_helpers import active_count, events_for, read_events

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_containers")]

REPO = Path(__file__).resolve().parents[2]
CREATE_CONCURRENCY = 12


# --- helpers -------------------------------------------------------------------------------


def tuned(settings: Settings, **reaper: object) -> Settings:
    """A copy of ``settings`` with some ``[reaper]`` values changed."""
    return settings.model_copy(update={"reaper": settings.reaper.model_copy(update=reaper)})


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def labels_for(lease: Lease, prefix: str) -> dict[str, str]:
    """The labels LeaseService gives a lease's container."""
    return real_labels_for(lease, prefix)


def container_spec(settings: Settings, name: str, labels: dict[str, str]) -> ContainerSpec:
    image = settings.images["busybox"]
    return ContainerSpec(
        name=name,
        image_ref=image.ref,
        cmd=image.cmd,
        env={},
        labels=labels,
        cpus=image.cpus,
        memory=image.memory,
        pids=image.pids,
        cap_add=[],
        binds=[],
        network=settings.docker.network,
    )


async def make_lease(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    *,
    expires_at: datetime | None = None,
    duration: timedelta | None = None,
    owner: str = "alice",
    age: timedelta = timedelta(0),
) -> Lease:
    """A running lease with a labelled container, as LeaseService.provision leaves it
    (``age`` ago: its ``created_at`` lies that far in the past)."""
    image = settings.images["busybox"]
    now = utcnow()
    lease = Lease(
        name=f"t-{secrets.token_hex(3)}",
        owner=owner,
        image="busybox",
        image_ref=image.ref,
        resources=Resources(cpus=image.cpus, memory=image.memory, pids=image.pids),
        created_at=now - age,
        expires_at=expires_at or now + (duration or timedelta(hours=1)),
        hourly_rate=image.hourly_rate,
    )
    await store.insert(lease, max_per_user=10_000, max_total=10_000)
    prefix = settings.redis.key_prefix
    cid = await engine.create(
        container_spec(settings, lease.container_name, labels_for(lease, prefix))
    )
    await store.update(lease.id, lambda x: x.model_copy(update={"docker_id": cid}))
    await engine.start(cid)
    return await store.update(
        lease.id,
        lambda x: x.transition(LeaseStatus.CREATING).transition(LeaseStatus.RUNNING),
        event=EventType.RUNNING,
        detail=cid[:12],
    )


async def make_many(
    n: int, settings: Settings, store: LeaseStore, engine: Engine, **kwargs: object
) -> list[Lease]:
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one() -> Lease:
        async with sem:
            return await make_lease(settings, store, engine, **kwargs)  # type: ignore[arg-type]

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def retarget(store: LeaseStore, leases: list[Lease], deadline: datetime) -> None:
    """Move every lease's deadline to ``deadline`` (as an extension would), concurrently
    (bounded: the store's connection pool refuses more than 100 connections)."""
    sem = asyncio.Semaphore(32)

    async def one(lease: Lease) -> None:
        async with sem:
            await store.update(
                lease.id,
                lambda x: x.model_copy(update={"expires_at": deadline}),
                event=EventType.EXTENDED,
                detail="test",
            )

    await asyncio.gather(*(one(lease) for lease in leases))


async def wait_for(
    check: Callable[[], Awaitable[bool]], limit: float, what: str, pause: float = 0.05
) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails the test after ``limit`` s."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            pytest.fail(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(pause)


async def our_containers(engine: Engine, prefix: str) -> list[str]:
    return [c.id for c in await engine.list_leased(instance=prefix)]


async def statuses(store: LeaseStore, leases: list[Lease]) -> Counter[str]:
    return Counter(x.status.value for x in await store.get_many([lease.id for lease in leases]))


async def claim_keys(redis_client: aioredis.Redis, prefix: str) -> list[str]:
    return [key async for key in redis_client.scan_iter(match=f"{prefix}:claim:*", count=1000)]


async def scheduled(store: LeaseStore) -> set[str]:
    far = utcnow() + timedelta(days=3650)
    return {i for i, _ in await store.deadlines_between(utcnow() - timedelta(days=3650), far)}


async def events_by_lease(store: LeaseStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in await read_events(store, "0", count=100_000):
        out.setdefault(event.lease, []).append(event.type.value)
    return out


@contextlib.asynccontextmanager
async def running(reaper: Reaper) -> AsyncIterator[asyncio.Task[None]]:
    """The reaper's ``run`` as a task; stopped (and checked for a clean end) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop))
    try:
        yield task
    finally:
        stop.set()
        done, _ = await asyncio.wait([task], timeout=60)
        if not done:
            stacks = []
            for other in asyncio.all_tasks():
                frames = other.get_stack(limit=8)
                where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
                stacks.append(f"{other.get_name()}: {where}")
            task.cancel()
            pytest.fail("the reaper did not stop within 60 s; tasks:\n" + "\n".join(stacks))
    task.result()  # a crashed loop fails the test here


class Proxy:
    """A byte pipe in front of a unix socket or TCP port: down (nothing listens), up, or a
    black hole (accepts connections and never answers)."""

    def __init__(self, listen: str | None, target: str | tuple[str, int]) -> None:
        """``listen``: a unix socket path, or None for a TCP port on 127.0.0.1 — reserved now
        (bound, not listening: connections are refused) so nobody else can take it."""
        self._sock: socket.socket | None = None
        if listen is None:
            self._sock = socket.socket()
            self._sock.bind(("127.0.0.1", 0))
            self.listen: str | int = int(self._sock.getsockname()[1])
        else:
            self.listen = listen
        self.target = target
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, *, blackhole: bool = False) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            if blackhole:
                return  # held open, never answered
            try:
                if isinstance(self.target, str):
                    up_r, up_w = await asyncio.open_unix_connection(self.target)
                else:
                    up_r, up_w = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            self._writers.add(up_w)
            for src, dst in ((reader, up_w), (up_r, writer)):
                task = asyncio.create_task(self._pipe(src, dst))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        if isinstance(self.listen, str):
            self._server = await asyncio.start_unix_server(handle, self.listen)
        else:
            assert self._sock is not None, "a TCP proxy starts once"
            self._server = await asyncio.start_server(handle, sock=self._sock)
            self._sock = None

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if isinstance(self.listen, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.listen)


async def start_headless(
    *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """``python -m containerlease_tui --reaper ARGS`` with the test's config (stderr piped)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "containerlease_tui",
        "--reaper",
        *args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(
    proc: asyncio.subprocess.Process, predicate: Callable[[dict[str, object]], bool], limit: float
) -> list[dict[str, object]]:
    """JSON log lines from ``proc``'s stderr up to the first one matching ``predicate``."""
    assert proc.stderr is not None
    lines: list[dict[str, object]] = []
    async with asyncio.timeout(limit):
        while True:
            raw = await proc.stderr.readline()
            if not raw:
                pytest.fail(f"reaper exited before the expected log line: {lines[-5:]}")
            record = json.loads(raw)
            lines.append(record)
            if predicate(record):
                return lines


# --- deadlines -------------------------------------------------------------------------------


@pytest.mark.timed
async def test_short_lease_is_reaped_within_a_second_of_its_deadline(
    settings: Settings, store: LeaseStore, engine: Engine, redis_client: aioredis.Redis
) -> None:
    # A long poll interval: only the created event and the deadline itself can wake it in time.
    # The 10 s warning point lies before the 2 s lease began, so only the 1 s one is sent.
    cfg = tuned(
        settings,
        interval=timedelta(seconds=60),
        warnings=[timedelta(seconds=10), timedelta(seconds=1)],
    )
    reaper = Reaper(cfg, store, engine, mode="test")
    async with running(reaper):
        await asyncio.sleep(0.3)  # the reaper is asleep with nothing due when the lease appears
        lease = await make_lease(cfg, store, engine, duration=timedelta(seconds=2))
        assert lease.docker_id
        deadline = lease.expires_at.timestamp()
        while await engine.inspect(lease.docker_id) is not None:
            assert time.time() < deadline + 5, "container still there 5 s after its deadline"
            await asyncio.sleep(0.02)
        lag = time.time() - deadline
        print(f"\nreap lag: {lag:.3f}s after the deadline")
        assert lag < 1.0, f"container removed {lag:.3f}s after its deadline"
        assert lag > -0.05, "removed before its deadline"

        async def closed() -> bool:
            current = await store.get(lease.id)
            return current is not None and current.status is LeaseStatus.EXPIRED

        await wait_for(closed, 5, "the lease to be expired")

    events = await events_for(store, lease.id)
    types = [e.type for e in events]
    # A start that took over a second (a loaded box) is recorded after the 1 s warning: the
    # warning is due by the clock, whatever the start's bookkeeping, so either order is right.
    assert types[0] is EventType.CREATED
    assert sorted(types[1:3]) == sorted([EventType.RUNNING, EventType.EXPIRING])
    assert types[3:] == [EventType.EXPIRED, EventType.REAPED]
    (warning,) = [e for e in events if e.type is EventType.EXPIRING]
    assert warning.detail == "expires in 1 s"
    before = lease.expires_at.timestamp() - warning.at.timestamp()
    assert 0.5 < before <= 1.05, f"warning sent {before:.3f}s before the deadline"
    assert events[4].detail == f"container {lease.docker_id[:12]} removed"
    assert lease.id not in await scheduled(store)
    assert await claim_keys(redis_client, cfg.redis.key_prefix) == []


async def test_two_hundred_leases_expiring_in_the_same_second(
    settings: Settings, store: LeaseStore, engine: Engine
) -> None:
    prefix = settings.redis.key_prefix
    t0 = time.monotonic()
    leases = await make_many(200, settings, store, engine)
    made = time.monotonic() - t0
    reaper = Reaper(settings, store, engine, mode="test")
    async with running(reaper):
        deadline = utcnow() + timedelta(seconds=1.5)
        await retarget(store, leases, deadline)

        async def all_gone() -> bool:
            return not await our_containers(engine, prefix)

        await wait_for(all_gone, 60, "all 200 containers to be removed", pause=0.1)
        gone = (utcnow() - deadline).total_seconds()

        async def all_closed() -> bool:
            return (await statuses(store, leases))["expired"] == 200

        await wait_for(all_closed, 10, "all 200 leases to be expired")
    print(f"\n200 leases: created in {made:.1f}s, all removed {gone:.2f}s after the deadline")
    assert await statuses(store, leases) == Counter({"expired": 200})
    assert not await scheduled(store)
    events = await events_by_lease(store)
    for lease in leases:
        assert events[lease.id].count("reaped") == 1
        assert "failed" not in events[lease.id]
    assert reaper.beat.reaped == 200 and reaper.beat.failed == 0


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def recording_logger() -> logging.Logger:
    """A private logger whose records the test can read (``log.handlers[0].records``)."""
    log = logging.getLogger(f"test.reaper.{secrets.token_hex(4)}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(Recorder())
    return log


def recorded(reaper: Reaper, msg: str) -> int:
    handler = reaper.log.handlers[0]
    assert isinstance(handler, Recorder)
    return sum(r.getMessage() == msg for r in handler.records)


async def two_reapers_reap(
    settings: Settings, store: LeaseStore, engine: Engine, n: int, *, claims: bool = True
) -> tuple[list[Lease], list[Reaper]]:
    """Two reapers (each with its own connections, like two processes) and ``n`` leases
    falling due together; returns once all are expired."""
    leases = await make_many(n, settings, store, engine)
    cfg = tuned(settings, concurrency=4)  # claims are taken a few at a time: they interleave
    other_store = LeaseStore.from_settings(cfg)
    other_engine = Engine(cfg.docker)
    reapers = [
        Reaper(cfg, store, engine, mode="test", log=recording_logger()),
        Reaper(cfg, other_store, other_engine, mode="test", log=recording_logger()),
    ]
    if not claims:
        # As if every claim expired under its holder: both reapers work on every lease.
        async def always(lease_id: str, ttl: timedelta) -> str:
            return secrets.token_hex(8)

        for reaper in reapers:
            reaper.store = LeaseStore(reaper.store.redis, cfg)
            reaper.store.claim = always  # type: ignore[method-assign]
    try:
        async with running(reapers[0]), running(reapers[1]):
            await retarget(store, leases, utcnow() + timedelta(seconds=1))

            async def all_closed() -> bool:
                return (await statuses(store, leases))["expired"] == n

            await wait_for(all_closed, 45, f"all {n} leases to be expired")
    finally:
        await other_engine.close()
        await other_store.close()
    assert not await our_containers(engine, settings.redis.key_prefix)
    events = await events_by_lease(store)
    for lease in leases:
        assert events[lease.id].count("reaped") == 1, events[lease.id]
        assert events[lease.id].count("expired") == 1, events[lease.id]
    return leases, reapers


async def test_two_reapers_remove_every_lease_exactly_once(
    settings: Settings, store: LeaseStore, engine: Engine
) -> None:
    _, (first, second) = await two_reapers_reap(settings, store, engine, 30)
    print(f"\ntwo reapers: {first.beat.reaped} + {second.beat.reaped} leases reaped")
    assert first.beat.reaped + second.beat.reaped == 30
    assert first.beat.reaped and second.beat.reaped, "one reaper did all: no contention tested"


async def test_exactly_once_even_when_claims_are_lost(
    settings: Settings, store: LeaseStore, engine: Engine
) -> None:
    """Claims bypassed: both reapers remove every container; the state machine lets only one
    close each lease, and only that one emits expired and reaped."""
    _, (first, second) = await two_reapers_reap(settings, store, engine, 12, claims=False)
    lost = sum(recorded(r, "closed by another reaper") for r in (first, second))
    print(f"\nno claims: {first.beat.reaped} + {second.beat.reaped} reaped; {lost} lost the race")
    assert first.beat.reaped + second.beat.reaped == 12
    assert lost >= 1, "no reaper reached the update after the other closed the lease"


# --- crashes, signals, dry runs --------------------------------------------------------------


async def test_kill_9_mid_pass_then_another_reaper_finishes(
    settings: Settings, store: LeaseStore, engine: Engine, redis_client: aioredis.Redis
) -> None:
    prefix = settings.redis.key_prefix
    leases = await make_many(30, settings, store, engine, expires_at=utcnow())
    proc = await start_headless(env={"CONTAINERLEASE_REAPER_CONCURRENCY": "3"})
    try:
        await read_until(proc, lambda r: r.get("action") == "reap", 30)
        proc.kill()  # SIGKILL, right after its first removal: others are in flight
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    held = await claim_keys(redis_client, prefix)
    assert held, "the killed reaper held no claim: it was not killed mid-pass"
    assert (await statuses(store, leases))["expired"] < 30

    reaper = Reaper(settings, store, engine, mode="test")
    async with running(reaper):

        async def finished() -> bool:
            done = (await statuses(store, leases))["expired"] == 30
            return done and not await our_containers(engine, prefix)

        took = await wait_for(finished, 45, "the second reaper to finish the work")
    print(f"\nkill -9 left {len(held)} claims; the second reaper finished in {took:.1f}s")
    events = await events_by_lease(store)
    for lease in leases:
        assert events[lease.id].count("reaped") == 1, events[lease.id]
    assert await claim_keys(redis_client, prefix) == []


@pytest.mark.timed
async def test_sigterm_finishes_in_flight_removals_and_exits_0(
    settings: Settings, store: LeaseStore, engine: Engine, redis_client: aioredis.Redis
) -> None:
    prefix = settings.redis.key_prefix
    leases = await make_many(24, settings, store, engine, expires_at=utcnow())
    proc = await start_headless(env={"CONTAINERLEASE_REAPER_CONCURRENCY": "3"})
    try:
        await read_until(proc, lambda r: r.get("action") == "reap", 30)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert proc.stderr is not None
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, rest
    records = [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert any(r.get("action") == "signal" and r.get("signal") == "SIGTERM" for r in records)
    assert records[-1]["msg"] == "reaper stopped"
    # Every lease is either done (expired, container gone) or untouched (running, container
    # there): nothing half-done, no claim left behind, and it stopped early.
    remaining = set(await our_containers(engine, prefix))
    current = await store.get_many([lease.id for lease in leases])
    for lease in current:
        if lease.status is LeaseStatus.EXPIRED:
            assert lease.docker_id not in remaining
        else:
            assert lease.status is LeaseStatus.RUNNING
            assert lease.docker_id in remaining
    done = sum(lease.status is LeaseStatus.EXPIRED for lease in current)
    assert 1 <= done < 24
    assert await claim_keys(redis_client, prefix) == []
    assert await reaper_status(store) == NO_REAPER  # the heartbeat was dropped


async def test_dry_run_changes_nothing(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
    docker: aiodocker.Docker,
) -> None:
    prefix = settings.redis.key_prefix
    # An orphan: our labels, no record, its label deadline long past.
    ghost = Lease(
        id="ghost234",
        name="ghost",
        owner="bob",
        image="busybox",
        image_ref=settings.images["busybox"].ref,
        expires_at=utcnow() - timedelta(hours=1),
        hourly_rate=1,
    )
    orphan = await engine.create(
        container_spec(settings, f"cl-{prefix}-ghost", labels_for(ghost, prefix))
    )
    leases = await make_many(3, settings, store, engine, expires_at=utcnow())
    soon = await make_lease(
        settings, store, engine, duration=timedelta(seconds=90), age=timedelta(minutes=5)
    )
    containers = set(await our_containers(engine, prefix))
    assert len(containers) == 5

    async def orphan_settled() -> bool:
        # The sweep leaves a container alone while it may still be being recorded (created
        # within SWEEP_YOUNG, at Docker's 1 s resolution); on a fast machine this test gets
        # there sooner than that.
        listed = {c.id: c for c in await engine.list_leased(instance=prefix)}
        created = listed[orphan].created_at
        return created is not None and created < utcnow() - SWEEP_YOUNG - timedelta(seconds=1)

    await wait_for(orphan_settled, 10, "the orphan to be older than the sweep's young window")

    async def snapshot() -> dict[str, str]:
        """Every key of this installation, whatever its type, with its whole value."""
        values = {}
        async for key in redis_client.scan_iter(match=f"{prefix}:*"):
            kind = await redis_client.type(key)
            if kind == "hash":
                value: object = await redis_client.hgetall(key)
            elif kind == "zset":
                value = await redis_client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = sorted(await redis_client.smembers(key))
            elif kind == "string":
                value = await redis_client.get(key)
            elif kind == "stream":
                value = await redis_client.xrange(key)
            else:
                raise AssertionError(f"{key} has an unexpected type {kind}")
            values[key] = f"{kind}:{json.dumps(value, sort_keys=True)}"
        return values

    before = await snapshot()
    proc = await start_headless("--once", "--dry-run")
    assert proc.stderr is not None
    async with asyncio.timeout(30):
        err = (await proc.stderr.read()).decode()
        code = await proc.wait()
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    actions = Counter(str(r.get("action")) for r in records)
    assert actions["would-reap"] == 3, err
    assert actions["would-adopt"] == 1, err  # a record-less container is adopted, not removed
    assert actions["would-warn"] == 1, err  # `soon` is within the 2 min warning
    would = {r["lease"] for r in records if r.get("action") == "would-reap"}
    assert would == {lease.id for lease in leases}
    summary = next(r for r in records if r.get("action") == "pass")
    assert (summary["due"], summary["reaped"], summary["swept"]) == (3, 3, 0)
    assert await snapshot() == before
    assert set(await our_containers(engine, prefix)) == containers
    assert orphan in containers
    current = await store.get(soon.id)
    assert current is not None and current.status is LeaseStatus.RUNNING


# --- losing Redis or Docker ----------------------------------------------------------------


@pytest.mark.own_redis
async def test_flushall_labelled_containers_still_go_and_others_are_never_touched(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
    docker: aiodocker.Docker,
    test_image: str,
    cleanup_containers: list[str],
) -> None:
    prefix = settings.redis.key_prefix
    short = await make_many(2, settings, store, engine, duration=timedelta(seconds=1))
    long = await make_lease(settings, store, engine, duration=timedelta(hours=1))
    # Not ours: no labels at all; and another installation's leased container, long overdue.
    plain = await docker.containers.create(
        {"Image": test_image, "Cmd": ["/bin/sh", "-c", "sleep 3600"]},
        name=f"cl-{prefix}-plain",
    )
    cleanup_containers.append(plain.id)
    foreign_lease = short[0].model_copy(update={"id": "foreign2"})
    foreign = await engine.create(
        container_spec(settings, f"cl-{prefix}-foreign", labels_for(foreign_lease, f"{prefix}x"))
    )
    cleanup_containers.append(foreign)

    # Redis loses everything (private to the test run: tests run one at a time).
    await redis_client.flushall()
    lost_at = time.time()

    grace = settings.reaper.grace.total_seconds()
    label_deadline = max(lease.expires_at for lease in short).timestamp()
    reaper = Reaper(settings, store, engine, mode="test")
    async with running(reaper):
        while {lease.docker_id for lease in short} & set(await our_containers(engine, prefix)):
            assert time.time() < label_deadline + grace + 15, "orphans not removed in time"
            await asyncio.sleep(0.05)
        gone_at = time.time()
        # A full sweep interval more, so the sweep looked at the survivors at least twice.
        await asyncio.sleep(settings.reaper.sweep_interval.total_seconds() * 1.5)

    # Adopted (rebuilt from their labels), then reaped at max(label deadline, loss + grace).
    floor = max(label_deadline, lost_at + grace)
    assert gone_at >= floor - 0.05, "removed before max(label deadline, loss + grace)"
    print(f"\nafter FLUSHALL: adopted orphans removed {gone_at - floor:.2f}s after their deadline")
    assert set(await our_containers(engine, prefix)) == {long.docker_id}
    assert (await docker.containers.get(plain.id)).id == plain.id
    assert (await docker.containers.get(foreign)).id == foreign
    events = await events_by_lease(store)
    for lease in short:
        assert events[lease.id] == ["created", "expiring", "expired", "reaped"]
    assert events[long.id] == ["created", "expiring"]  # adopted, its owner warned
    adopted = await store.get(long.id)
    assert adopted is not None and adopted.status is LeaseStatus.RUNNING
    assert adopted.expires_at == long.expires_at
    assert "foreign2" not in events


async def test_docker_unreachable_lease_waits_unmarked_then_is_reaped_on_recovery(
    settings: Settings, store: LeaseStore, engine: Engine, tmp_path: Path
) -> None:
    lease = await make_lease(settings, store, engine, expires_at=utcnow())
    assert lease.docker_id
    docker_path = settings.docker.url.removeprefix("unix://")
    proxy = Proxy(str(tmp_path / "docker.sock"), docker_path)
    cut = settings.model_copy(
        update={
            "docker": settings.docker.model_copy(
                update={"url": f"unix://{proxy.listen}", "timeout": 3.0}
            )
        }
    )
    flaky = Engine(cut.docker)
    reaper = Reaper(cut, store, flaky, mode="test", log=recording_logger())
    try:
        async with running(reaper) as task:

            async def waiting() -> bool:
                return recorded(reaper, "engine unreachable; the lease waits for it") >= 1

            await wait_for(waiting, 15, "the reaper to find the engine unreachable")
            await wait_for(
                lambda: asyncio.sleep(0, recorded(reaper, "pass failed; retrying") >= 3),
                15,
                "a few passes waiting for the engine",
            )
            # An unreachable engine is no removal attempt: the lease is not marked failed.
            current = await store.get(lease.id)
            assert current is not None and current.status is LeaseStatus.RUNNING
            assert lease.id in await scheduled(store)  # still due, never dropped
            assert await engine.inspect(lease.docker_id) is not None
            assert not task.done()

            await proxy.start()

            async def reaped() -> bool:
                current = await store.get(lease.id)
                return current is not None and current.status is LeaseStatus.EXPIRED

            took = await wait_for(reaped, 20, "the lease to be reaped after recovery")
            print(f"\ndocker back: reaped {took:.2f}s after recovery")
    finally:
        await proxy.stop()
        await flaky.close()
    assert await engine.inspect(lease.docker_id) is None
    assert [e.type for e in await events_for(store, lease.id)] == [
        EventType.CREATED,
        EventType.RUNNING,
        EventType.EXPIRED,
        EventType.REAPED,
    ]
    assert lease.id not in await scheduled(store)


async def test_docker_unreachable_run_once_fails_the_pass_not_the_lease(
    settings: Settings, store: LeaseStore, engine: Engine, tmp_path: Path
) -> None:
    lease = await make_lease(settings, store, engine, expires_at=utcnow())
    bad = settings.model_copy(
        update={"docker": settings.docker.model_copy(update={"url": f"unix://{tmp_path}/no.sock"})}
    )
    broken = Engine(bad.docker)
    try:
        result = await Reaper(bad, store, broken, mode="test").run_once()
    finally:
        await broken.close()
    assert (result.due, result.failed, result.reaped) == (1, 1, 0)
    current = await store.get(lease.id)
    assert current is not None and current.status is LeaseStatus.RUNNING  # not its failure
    assert lease.id in await scheduled(store)

    # Still due: the good engine reaps it at once.
    result = await Reaper(settings, store, engine, mode="test").run_once()
    assert (result.due, result.reaped, result.failed) == (1, 1, 0)
    current = await store.get(lease.id)
    assert current is not None and current.status is LeaseStatus.EXPIRED
    assert lease.docker_id and await engine.inspect(lease.docker_id) is None


async def test_redis_unreachable_keeps_running_and_reaps_on_recovery(
    settings: Settings, store: LeaseStore, engine: Engine, redis_url: str
) -> None:
    lease = await make_lease(settings, store, engine, duration=timedelta(seconds=1))
    assert lease.docker_id
    target = urlsplit(redis_url)
    proxy = Proxy(None, (target.hostname or "127.0.0.1", target.port or 6379))
    db = target.path.strip("/") or "0"
    cut = settings.model_copy(
        update={
            "redis": settings.redis.model_copy(
                update={"url": f"redis://127.0.0.1:{proxy.listen}/{db}", "socket_timeout": 2.0}
            )
        }
    )
    cut_store = LeaseStore.from_settings(cut)
    reaper = Reaper(cut, cut_store, engine, mode="test", log=recording_logger())
    try:
        async with running(reaper) as task:
            await asyncio.sleep(3)  # passes fail while Redis is away; the deadline passes
            assert not task.done()
            assert recorded(reaper, "pass failed; retrying") >= 2
            assert await engine.inspect(lease.docker_id) is not None
            await proxy.start()

            async def reaped() -> bool:
                current = await store.get(lease.id)
                return current is not None and current.status is LeaseStatus.EXPIRED

            took = await wait_for(reaped, 15, "the lease to be reaped once Redis is back")
            print(f"\nredis back: reaped {took:.2f}s after recovery")
    finally:
        await proxy.stop()
        await cut_store.close()
    assert await engine.inspect(lease.docker_id) is None


async def test_cancelling_the_task_releases_claims(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    """The app quits mid-removal: claims are released, the lease stays open and due."""
    lease = await make_lease(settings, store, engine, expires_at=utcnow())
    proxy = Proxy(str(tmp_path / "hole.sock"), "/nonexistent")
    await proxy.start(blackhole=True)  # Docker "hangs": removal never answers
    hung = settings.model_copy(
        update={"docker": settings.docker.model_copy(update={"url": f"unix://{proxy.listen}"})}
    )
    stuck = Engine(hung.docker)
    prefix = settings.redis.key_prefix
    try:
        task = asyncio.create_task(Reaper(hung, store, stuck, mode="test").run(asyncio.Event()))

        async def claimed() -> bool:
            return bool(await claim_keys(redis_client, prefix))

        await wait_for(claimed, 10, "the reaper to claim the lease")
        await asyncio.sleep(0.3)
        task.cancel()
        async with asyncio.timeout(10):
            await asyncio.wait([task])
        assert task.cancelled()
    finally:
        await proxy.stop()
        await stuck.close()
    assert await claim_keys(redis_client, prefix) == []
    current = await store.get(lease.id)
    assert current is not None and current.status is LeaseStatus.RUNNING
    assert lease.id in await scheduled(store)
    assert await reaper_status(store) == NO_REAPER


# --- sweep, heartbeat ------------------------------------------------------------------------


async def test_sweep_closes_records_whose_container_vanished_and_reschedules(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
) -> None:
    vanished = await make_lease(settings, store, engine, duration=timedelta(hours=1))
    unscheduled = await make_lease(settings, store, engine, expires_at=utcnow())
    assert vanished.docker_id and unscheduled.docker_id
    await engine.remove(vanished.docker_id)  # behind ContainerLease's back
    # An overdue lease that lost its deadline entry: only the sweep can find it.
    await redis_client.zrem(f"{settings.redis.key_prefix}:deadlines", unscheduled.id)

    result = await Reaper(settings, store, engine, mode="test").run_once()
    assert result.due == 0 and result.swept == 1
    current = await store.get(vanished.id)
    assert current is not None and current.status is LeaseStatus.FAILED
    assert current.error == "container disappeared"
    assert current.failure is FailureKind.VANISHED
    assert unscheduled.id in await scheduled(store)

    result = await Reaper(settings, store, engine, mode="test").run_once()
    assert result.reaped == 1
    current = await store.get(unscheduled.id)
    assert current is not None and current.status is LeaseStatus.EXPIRED
    assert await engine.inspect(unscheduled.docker_id) is None


async def test_sweep_removes_the_container_of_a_closed_lease(
    settings: Settings, store: LeaseStore, engine: Engine
) -> None:
    """A released lease whose container survived (its label deadline is an hour away): the
    closed record wins, the container goes once the end + grace has passed."""
    closed = await make_lease(settings, store, engine, duration=timedelta(hours=1))
    alive = await make_lease(settings, store, engine, duration=timedelta(hours=1))
    assert closed.docker_id and alive.docker_id
    await store.update(
        closed.id,
        lambda x: x.transition(LeaseStatus.RELEASED).model_copy(
            update={"ended_at": utcnow() - timedelta(seconds=5)}
        ),
        event=EventType.RELEASED,
    )
    reaper = Reaper(settings, store, engine, mode="test")
    swept = 0

    async def gone() -> bool:
        nonlocal swept
        swept += (await reaper.run_once()).swept
        assert closed.docker_id
        return await engine.inspect(closed.docker_id) is None

    # Containers younger than a second are left to the next sweep, hence a few passes.
    await wait_for(gone, 10, "the closed lease's container to be swept", pause=0.2)
    assert swept == 1
    assert await engine.inspect(alive.docker_id) is not None
    events = [e for e in await events_for(store, closed.id) if e.type is EventType.REAPED]
    assert [e.detail for e in events] == [f"orphan container {closed.docker_id[:12]} removed"]


async def test_heartbeat_while_running_and_status_line(
    settings: Settings, store: LeaseStore, engine: Engine
) -> None:
    assert await reaper_status(store) == NO_REAPER
    reaper = Reaper(settings, store, engine, mode="test")
    async with running(reaper):

        async def alive() -> bool:
            return (await reaper_status(store)).startswith("reaper alive on ")

        await wait_for(alive, 5, "a heartbeat")
        line = await reaper_status(store)
        assert f"(pid {os.getpid()}, last pass " in line
        (beat,) = await store.reapers()
        assert beat.mode == "test" and beat.version and beat.passes >= 1
        # A key of its own that expires by itself if the reaper dies without a word.
        ttl_ms = await store.redis.pttl(store.keys.reaper(beat.key))
        assert 0 < ttl_ms <= beat.ttl_seconds * 1000
    assert await reaper_status(store) == NO_REAPER


async def test_a_dead_reapers_heartbeat_expires_by_itself(store: LeaseStore) -> None:
    beat = ReaperBeat(host="gone-host", pid=1, ttl_seconds=0.3)
    await store.heartbeat(beat)
    assert [b.host for b in await store.reapers()] == ["gone-host"]

    async def expired() -> bool:
        return await store.reapers() == []

    await wait_for(expired, 3, "the heartbeat key to expire")
    assert not await store.redis.sismember(store.keys.reapers, beat.key)


# --- robustness ------------------------------------------------------------------------------


# INFO commandstats counts the whole server's XREADs: a private server counts only ours.
@pytest.mark.own_redis
@pytest.mark.timed
async def test_an_unreadable_event_is_stepped_over_and_stop_stays_prompt(
    settings: Settings, store: LeaseStore, engine: Engine, redis_client: aioredis.Redis
) -> None:
    # An entry a newer version might write: this one cannot parse it.
    await redis_client.xadd(store.keys.events, {"type": "from-the-future", "lease": "x"})
    batch = await store.follow_events("0")
    assert batch.events == [] and batch.cursor != "0"

    async def xreads() -> int:
        stats = await redis_client.info("commandstats")
        return int(stats.get("cmdstat_xread", {}).get("calls", 0))

    reaper = Reaper(tuned(settings, interval=timedelta(seconds=2)), store, engine, mode="test")
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop))
    await asyncio.sleep(0.2)
    await redis_client.xadd(store.keys.events, {"type": "from-the-future", "lease": "y"})
    before = await xreads()
    await asyncio.sleep(1.0)
    calls = await xreads() - before
    assert calls < 10, f"{calls} XREADs in a second: the follower spins on the entry"
    started = time.monotonic()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert time.monotonic() - started < 3


async def test_sweep_fails_a_provision_whose_process_died(
    settings: Settings,
    store: LeaseStore,
    engine: Engine,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from containerlease_tui import reaper as reaper_module

    monkeypatch.setattr(reaper_module, "STALLED_AFTER", timedelta(seconds=1))
    prefix = settings.redis.key_prefix
    image = settings.images["busybox"]

    def pending(name: str) -> Lease:
        now = utcnow()
        return Lease(
            name=name,
            owner="alice",
            image="busybox",
            image_ref=image.ref,
            created_at=now - timedelta(seconds=5),
            expires_at=now + timedelta(hours=1),
            hourly_rate=image.hourly_rate,
        )

    # Crashed after creating its container (labelled, never recorded), and one still at work.
    crashed, working = pending("crashed"), pending("working")
    for lease in (crashed, working):
        await store.insert(lease, max_per_user=10, max_total=10)
    await store.update(crashed.id, lambda x: x.transition(LeaseStatus.CREATING))
    orphan = await engine.create(
        container_spec(settings, crashed.container_name, labels_for(crashed, prefix))
    )
    assert await store.provisioning_start(working.id, timedelta(seconds=30))
    assert await active_count(store, "alice") == 2

    result = await Reaper(settings, store, engine, mode="test").run_once()

    failed = await store.get(crashed.id)
    assert failed is not None and failed.status is LeaseStatus.FAILED
    assert failed.error and "provisioning stopped" in failed.error
    assert failed.failure is FailureKind.PROVISION
    assert await engine.inspect(orphan) is None
    still = await store.get(working.id)
    assert still is not None and still.status is LeaseStatus.PENDING
    assert await active_count(store, "alice") == 1  # the crashed one's quota slot is free
    assert result.swept >= 1
    assert EventType.FAILED in [e.type for e in await events_for(store, crashed.id)]
