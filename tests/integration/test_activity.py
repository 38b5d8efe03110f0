"""Issue 18 on the command line, against the real Redis and engine: the activity log with the
right actor per OS user and its redaction, ``--follow`` within a second, the capped stream
saying when older history is gone, spend that agrees with ``ls`` to the cent, capacity and the
reapers."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from containerlease_tui.config import Settings
from containerlease_tui.leases import LeaseService
from containerlease_tui.models import EventType, Lease, utcnow
from containerlease_tui.store import LeaseStore
from tests.integration.test_cli_contract import Cli

pytestmark = pytest.mark.usefixtures("cleanup_containers")


@pytest.fixture
def cli(config_file: Path, tmp_path: Path) -> Cli:
    return Cli(config_file, tmp_path)


def _events(run_out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in run_out.splitlines() if line.strip()]


@pytest.mark.timed
def test_follow_prints_a_new_event_within_a_second(cli: Cli) -> None:
    lease = cli.json("provision", "busybox", "--wait", "--duration", "20m")
    assert isinstance(lease, dict)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    follower = subprocess.Popen(
        [sys.executable, "-m", "containerlease_tui", "events", "--follow", "--json"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.put((time.monotonic(), line))

    threading.Thread(target=read, daemon=True).start()
    try:
        # The history first (the lease's own events): then it follows.
        while json.loads(lines.get(timeout=30)[1])["type"] != "running":
            pass
        done = cli("extend", str(lease["id"]), "--by", "5m")
        finished = time.monotonic()
        assert done.returncode == 0, done.stderr
        arrived, line = lines.get(timeout=30)
        event = json.loads(line)
        assert (event["type"], event["lease"], event["detail"]) == (
            "extended",
            lease["id"],
            "by 5m",
        )
        # The event is written before `extend` exits: it may even arrive first.
        assert arrived - finished < 1.0
    finally:
        follower.terminate()
        follower.wait(10)


async def test_a_full_stream_says_older_history_is_gone(cli: Cli, settings: Settings) -> None:
    small = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"stream_maxlen": 100})}
    )
    store = LeaseStore.from_settings(small)
    try:
        for i in range(400):
            await store.emit(EventType.EXTENDED, f"lease{i:04d}", "alice", f"by {i}m")
    finally:
        await store.close()
    done = cli("events", "--json", env={"CONTAINERLEASE_REDIS_STREAM_MAXLEN": "100"})
    assert done.returncode == 0, done.stderr
    kept = _events(done.stdout)
    assert 100 <= len(kept) < 400 and kept[-1]["lease"] == "lease0399"
    assert "older events are gone" in done.stderr and len(done.stderr.splitlines()) == 1
    quiet = cli("events", "--json", "--since", "1s")  # asked for less than is kept: no note
    assert "older events are gone" not in quiet.stderr


async def test_spend_agrees_with_ls_to_the_cent(settings: Settings, cli: Cli) -> None:
    service = LeaseService.open(settings)
    now = utcnow()
    made = []
    try:
        for hours_ago, hours, rate in ((3, 5, "0.36"), (30, 40, "1.25"), (1, 0.5, "0.07")):
            start = now - timedelta(hours=hours_ago)
            lease = Lease(
                name=f"spend-{hours_ago}",
                owner=service.user,
                image="busybox",
                image_ref="busybox:latest",
                created_at=start,
                expires_at=start + timedelta(hours=hours),
                hourly_rate=Decimal(rate),
            )
            await service.store.insert(lease, max_per_user=100, max_total=300)
            made.append(lease)
        team = await service.spend(now)
        listed = await service.list()
    finally:
        await service.close()
    # A test's own arithmetic: today since midnight UTC, at each rate, to the 1/100 cent.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def cost(lease: Lease, since: object) -> Decimal:
        begin = max(lease.created_at, since)  # type: ignore[type-var]
        end = min(now, lease.expires_at)
        seconds = Decimal(str(max((end - begin).total_seconds(), 0)))
        return (lease.hourly_rate * seconds / 3600).quantize(Decimal("0.0001"))

    expected_today = sum((cost(x, midnight) for x in made), Decimal(0))
    (mine,) = team.users
    assert mine.today == expected_today and team.total.today == expected_today
    assert mine.rate == Decimal("0.36") + Decimal("1.25")  # the 0.5 h lease is past its deadline
    assert mine.active == 3 and mine.by_image == {"busybox": 3}
    # The leases that started today: their accrued cost (what `ls` shows) is their cost today.
    today = [x for x in listed if x.created_at >= midnight]
    assert sum((x.accrued_cost(now) for x in today), Decimal(0)) == sum(
        (cost(x, midnight) for x in made if x.created_at >= midnight), Decimal(0)
    )
    printed = cli.json("spend")
    assert isinstance(printed, dict)
    assert printed["users"][0]["active"] == 3
    assert Decimal(printed["total"]["rate_per_hour"]) == Decimal("1.61")
    assert printed["budget"]["budget_hours"] is None


def test_capacity_and_reapers(cli: Cli) -> None:
    lease = cli.json("provision", "busybox", "--wait", "--duration", "20m")
    assert isinstance(lease, dict)
    box = cli.json("capacity")
    assert isinstance(box, dict)
    assert (box["active"], box["max_leases_total"], box["full"]) == (1, 300, False)
    assert box["cpus_reserved"] == 0.5 and box["memory_reserved"] == 64 * 1024**2
    assert isinstance(box["host_cpus"], int) and box["host_cpus"] >= 1
    assert isinstance(box["host_memory"], int) and box["host_memory"] > 64 * 1024**2
    text = cli("capacity")
    assert text.returncode == 0 and "1 of 300 active" in text.stdout
    view = cli.json("reapers")
    assert isinstance(view, dict)
    assert [d["lease"] for d in view["next_deadlines"]] == [lease["id"]]
    assert view["claimed"] == []
    plain = cli("reapers")
    assert plain.returncode == 0 and lease["id"] in plain.stdout


def test_provision_is_refused_when_the_box_is_full(cli: Cli) -> None:
    env = {"CONTAINERLEASE_LIMITS_MAX_LEASES_TOTAL": "1"}
    first = cli("provision", "busybox", "--wait", "--duration", "20m", "--json", env=env)
    assert first.returncode == 0, first.stderr
    full = cli("capacity", "--json", env=env)
    assert json.loads(full.stdout)["full"] is True
    refused = cli("provision", "busybox", "--duration", "20m", env=env)
    assert refused.returncode == 1 and "the box already has 1 active lease" in refused.stderr
