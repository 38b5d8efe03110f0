"""Store scaling: due leases and one owner's leases among 1k, 10k and 100k records.

Records are written straight into :class:`LeaseStore`'s key schema with pipelines (the same keys
and indexes the insert script writes), on a private redis-server, under a dedicated prefix that
is deleted afterwards. Sizes grow cumulatively; at every size the same 10 leases are due and the
same owner has the same 20 leases, so the answers never change — only the haystack does.

* **ours** — ``store.due(now)`` (a ``ZRANGEBYSCORE`` on the deadline index) and
  ``store.list_owner(owner)`` (the owner's index, then one pipelined ``HGET`` per lease).
* **KEYS scan** — the original design's way: ``KEYS P:lease:*``, then per key a pipelined
  ``TTL`` (due: ``TTL <= 0``) or ``HGET owner`` (then the matching records' data).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks.common import (
    BenchEnv,
    Result,
    goal,
    log,
    make_settings,
    new_prefix,
    private_redis,
    ratio,
    redis_version,
    rounded,
    summarize,
)
from containerlease_tui.models import Lease, LeaseStatus
from containerlease_tui.store import LeaseStore

TARGET_OWNER = "bench-target"
TARGET_LEASES = 20
DUE_LEASES = 10
OTHER_OWNERS = 500
BATCH = 2000
FLAT_GOAL = 2.0
"""Ours may grow at most this much over the whole range (log2(100k)/log2(1k) ≈ 1.67)."""


def _records(start: int, count: int, now: datetime, rng: random.Random) -> list[Lease]:
    """Leases number ``start`` … ``start + count - 1``: the first 20 are the target owner's,
    the next 10 are due; the rest belong to 500 other owners and expire within 8 hours."""
    out = []
    for i in range(start, start + count):
        if i < TARGET_LEASES:
            owner, expires = TARGET_OWNER, now + timedelta(hours=2)
        elif i < TARGET_LEASES + DUE_LEASES:
            owner, expires = f"user{i % OTHER_OWNERS}", now - timedelta(seconds=30 + i)
        else:
            owner = f"user{i % OTHER_OWNERS}"
            expires = now + timedelta(seconds=rng.randint(60, 8 * 3600))
        created = now - timedelta(seconds=rng.randint(1, 3600))
        out.append(
            Lease(
                id=f"b{i:07d}",
                name=f"busybox-{i}",
                owner=owner,
                image="busybox",
                image_ref="containerlease-test:busybox",
                status=LeaseStatus.RUNNING,
                docker_id=f"{i:064x}",
                created_at=created,
                expires_at=expires,
                hourly_rate=Decimal("0.36"),
                host="bench",
            )
        )
    return out


async def _insert(store: LeaseStore, leases: list[Lease]) -> None:
    """The insert script's writes, pipelined (no quota checks, no events)."""
    k = store.keys
    retention = store.settings.redis.retention
    for first in range(0, len(leases), BATCH):
        async with store.redis.pipeline(transaction=False) as pipe:
            for lease in leases[first : first + BATCH]:
                key = k.lease(lease.id)
                pipe.hset(
                    key,
                    mapping={
                        "data": lease.model_dump_json(),
                        "status": lease.status.value,
                        "owner": lease.owner,
                    },
                )
                pipe.expireat(key, int((lease.expires_at + retention).timestamp()) + 1)
                pipe.sadd(k.active, lease.id)
                pipe.sadd(k.active_owner(lease.owner), lease.id)
                pipe.zadd(k.deadlines, {lease.id: lease.expires_at.timestamp()})
                pipe.zadd(k.leases, {lease.id: lease.created_at.timestamp()})
                pipe.zadd(k.owner(lease.owner), {lease.id: lease.created_at.timestamp()})
                pipe.zadd(k.ids, {lease.id: 0})
            await pipe.execute()


async def _scan_due(client: aioredis.Redis, prefix: str) -> list[str]:
    keys: list[str] = await client.keys(f"{prefix}:lease:*")
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.ttl(key)
        ttls = await pipe.execute()
    return [key for key, ttl in zip(keys, ttls, strict=True) if int(ttl) <= 0]


async def _scan_owner(client: aioredis.Redis, prefix: str, owner: str) -> list[Lease]:
    keys: list[str] = await client.keys(f"{prefix}:lease:*")
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "owner")
        owners = await pipe.execute()
    mine = [key for key, who in zip(keys, owners, strict=True) if who == owner]
    async with client.pipeline(transaction=False) as pipe:
        for key in mine:
            pipe.hget(key, "data")
        raws = await pipe.execute()
    return [Lease.model_validate_json(raw) for raw in raws if raw]


async def _time(call: Callable[[], Awaitable[object]], reps: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


async def _measure(env: BenchEnv, url: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    prefix = new_prefix(env, "store")
    settings = make_settings(env, prefix, redis_url=url)
    store = LeaseStore.from_settings(settings)
    client = store.redis
    rng = random.Random(42)
    now = datetime.now(UTC)
    out: dict[str, Any] = {}
    inserted = 0
    try:
        for size in sizes:
            started = time.perf_counter()
            await _insert(store, _records(inserted, size - inserted, now, rng))
            inserted = size
            log(f"store: {size} records in place ({time.perf_counter() - started:.1f}s)")
            due = await store.due(datetime.now(UTC))
            owned = await store.list_owner(TARGET_OWNER)
            scanned = await _scan_owner(client, prefix, TARGET_OWNER)
            if (
                len(due) != DUE_LEASES
                or TARGET_LEASES not in (len(owned), len(scanned))
                or len(owned) != len(scanned)
            ):
                raise RuntimeError(
                    f"wrong answers at {size}: {len(due)} due, {len(owned)}/{len(scanned)} owned"
                )
            scan_reps = max(3, min(30, 300_000 // size))
            ours_reps = 20 if env.quick else 50
            out[str(size)] = {
                "ours_due": summarize(await _time(lambda: store.due(datetime.now(UTC)), ours_reps)),
                "ours_list_owner": summarize(
                    await _time(lambda: store.list_owner(TARGET_OWNER), ours_reps)
                ),
                "scan_due": summarize(await _time(lambda: _scan_due(client, prefix), scan_reps)),
                "scan_list_owner": summarize(
                    await _time(lambda: _scan_owner(client, prefix, TARGET_OWNER), scan_reps)
                ),
                "redis_keys": int(await client.dbsize()),
            }
            row = out[str(size)]
            log(
                "store: "
                + ", ".join(f"{op} p50 {row[op]['p50'] * 1000:.2f}ms" for op in row if op[0] != "r")
            )
    finally:
        cursor = 0
        while True:  # the private server holds nothing else, but delete by prefix all the same
            cursor, keys = await client.scan(cursor, match=f"{prefix}:*", count=10_000)
            if keys:
                await client.unlink(*keys)
            if cursor == 0:
                break
        await store.close()
    return out


def _slope(small: float | None, large: float | None, factor: float) -> float | None:
    """Log-log slope: 0 = flat, 1 = linear in the record count."""
    if not small or not large or factor <= 1:
        return None
    return math.log(large / small) / math.log(factor)


async def run(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """Measure the store at every size; returns the ``store`` result."""
    sizes = (1_000, 10_000) if env.quick else (1_000, 10_000, 100_000)
    notes: list[str] = []
    if env.store_redis_url:
        url = env.store_redis_url
        measured = await _measure(env, url, sizes)
        server = await redis_version(url)
    else:
        with tempfile.TemporaryDirectory(prefix="cl-bench-redis.") as tmp:
            async with private_redis(Path(tmp)) as url:
                server = await redis_version(url)
                measured = await _measure(env, url, sizes)
        notes.append("records lived on a private redis-server started for this benchmark")
    small, large = str(sizes[0]), str(sizes[-1])
    factor = sizes[-1] / sizes[0]
    ratios: dict[str, Any] = {}
    for size in map(str, sizes):
        row = measured[size]
        ratios[size] = {
            "ours_due/scan_due": rounded(ratio(row["ours_due"]["p50"], row["scan_due"]["p50"]), 5),
            "ours_list_owner/scan_list_owner": rounded(
                ratio(row["ours_list_owner"]["p50"], row["scan_list_owner"]["p50"]), 5
            ),
        }
        for op in ("ours_due", "ours_list_owner", "scan_due", "scan_list_owner"):
            ratios[size][f"{op} growth vs {small}"] = rounded(
                ratio(row[op]["p50"], measured[small][op]["p50"]), 4
            )
    slopes = {
        op: rounded(_slope(measured[small][op]["p50"], measured[large][op]["p50"], factor), 3)
        for op in ("ours_due", "ours_list_owner", "scan_due", "scan_list_owner")
    }
    ratios["log-log slope"] = slopes
    goals = []
    for ours, scan, what in (
        ("ours_due", "scan_due", "finding due leases"),
        ("ours_list_owner", "scan_list_owner", "listing one owner's leases"),
    ):
        growth = ratios[large][f"{ours} growth vs {small}"]
        scan_growth = ratios[large][f"{scan} growth vs {small}"]
        goals.append(
            goal(
                f"{what}: flat from {sizes[0]:,} to {sizes[-1]:,} records",
                f"growth < {FLAT_GOAL:g}x (scan grows ~{factor:.0f}x)",
                growth,
                None if growth is None else growth < FLAT_GOAL,
                f"slope {slopes[ours]} vs the scan's {slopes[scan]} (scan grew {scan_growth}x)",
            )
        )
    return Result(
        benchmark="store",
        machine={**machine, "store_redis_version": server},
        params={
            "sizes": list(sizes),
            "due_leases": DUE_LEASES,
            "target_owner_leases": TARGET_LEASES,
            "other_owners": OTHER_OWNERS,
            "insert": f"pipelined writes of the LeaseStore key schema, {BATCH} records a batch",
        },
        results=measured,
        ratios=ratios,
        goals=goals,
        notes=notes,
    )
