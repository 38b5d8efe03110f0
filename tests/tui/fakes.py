"""Fixed data and a small in-memory LeaseService for the pure rendering tests (snapshots and
screenshots). It is the real LeaseService (so validation and messages are the real ones) over a
fake store and engine; nothing here talks to Redis or Docker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from containerlease_tui.config import (
    DockerSettings,
    ImageSpec,
    LimitSettings,
    RedisSettings,
    Settings,
)
from containerlease_tui.engine import EngineUnavailable, PullProgress
from containerlease_tui.leases import LeaseService, ProvisionRequest, ServiceUnavailable
from containerlease_tui.models import EventType, Lease, LeaseEvent, LeaseStatus, Resources
from containerlease_tui.store import EventBatch, ReaperBeat, StoreUnavailable

if TYPE_CHECKING:
    from containerlease_tui.tui import ContainerLeaseApp

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
"""The fixed "now" of every rendering test."""
REDIS_URL = "redis://redis.example:6379/0"
REDIS_DOWN = f"Redis at {REDIS_URL} is unreachable: Error 111 connecting to redis.example:6379."
DOCKER_DOWN = "Docker engine at unix:///var/run/docker.sock is unreachable: connection refused"


def fixed_clock() -> datetime:
    return NOW


def demo_settings() -> Settings:
    """A catalog and limits like a real box's (explicit values: no env, no config file)."""
    return Settings(
        redis=RedisSettings(url=REDIS_URL),
        docker=DockerSettings(url="unix:///var/run/docker.sock"),
        images={
            "ubuntu": ImageSpec(
                ref="ubuntu:24.04", hourly_rate=Decimal("0.04"), description="Ubuntu 24.04 LTS"
            ),
            "alpine": ImageSpec(
                ref="alpine:3.20",
                hourly_rate=Decimal("0.01"),
                description="Alpine Linux 3.20",
                memory=256 * 1024**2,
            ),
            "python": ImageSpec(
                ref="python:3.12",
                hourly_rate=Decimal("0.12"),
                description="Python 3.12 with Jupyter",
                cpus=2.0,
                memory=2 * 1024**3,
            ),
            "postgres": ImageSpec(
                ref="postgres:16", hourly_rate=Decimal("0.08"), description="PostgreSQL 16"
            ),
        },
        limits=LimitSettings(
            min_duration=timedelta(minutes=5),
            default_duration=timedelta(hours=1),
            max_duration=timedelta(hours=8),
            max_lifetime=timedelta(hours=24),
        ),
    )


def _lease(
    lease_id: str,
    name: str,
    owner: str,
    image: str,
    status: LeaseStatus,
    *,
    age: timedelta,
    left: timedelta,
    rate: str,
    docker_id: str | None = None,
    ended_ago: timedelta | None = None,
    error: str | None = None,
) -> Lease:
    created = NOW - age
    return Lease(
        id=lease_id,
        name=name,
        owner=owner,
        image=image,
        image_ref=f"{image}:latest",
        resources=Resources(cpus=1.0, memory=512 * 1024**2),
        status=status,
        docker_id=docker_id,
        created_at=created,
        expires_at=NOW + left,
        ended_at=NOW - ended_ago if ended_ago is not None else None,
        hourly_rate=Decimal(rate),
        error=error,
        host="devbox",
    )


def demo_leases() -> list[Lease]:
    """Six leases of three users in every interesting state."""
    m, h = timedelta(minutes=1), timedelta(hours=1)
    return [
        _lease(
            "k7m2x9qa",
            "api-dev",
            "alice",
            "ubuntu",
            LeaseStatus.RUNNING,
            age=48 * m,
            left=h + 12 * m,
            rate="0.04",
            docker_id="3f9c2a1b7d4e8a6c5b2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
        ),
        _lease(
            "b4n8c3rd",
            "pg-test",
            "alice",
            "postgres",
            LeaseStatus.RUNNING,
            age=58 * m,
            left=2 * m + timedelta(seconds=5),
            rate="0.08",
            docker_id="9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c",
        ),
        _lease(
            "w6t5y2pe",
            "notebook",
            "bob",
            "python",
            LeaseStatus.PULLING,
            age=1 * m,
            left=4 * h - m,
            rate="0.12",
        ),
        _lease(
            "h3j9v7sf",
            "scratch",
            "carol",
            "alpine",
            LeaseStatus.STOPPED,
            age=2 * h,
            left=6 * h,
            rate="0.01",
            docker_id="5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b",
        ),
        _lease(
            "p2q8r4tu",
            "broken",
            "alice",
            "python",
            LeaseStatus.FAILED,
            age=10 * m,
            left=50 * m,
            rate="0.12",
            ended_ago=9 * m,
            error="image python:3.12 could not be pulled",
        ),
        _lease(
            "e5f6g7hj",
            "old-box",
            "bob",
            "ubuntu",
            LeaseStatus.EXPIRED,
            age=2 * h + 20 * m,
            left=-20 * m,
            rate="0.04",
            ended_ago=20 * m,
            docker_id="1e2d3c4b5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d",
        ),
    ]


DEMO_LOGS = [
    "2025-03-14T11:12:03Z api-dev starting (pid 1)",
    "2025-03-14T11:12:03Z listening on 0.0.0.0:8080",
    "2025-03-14T11:12:09Z GET /healthz 200 0.4ms",
    "2025-03-14T11:13:41Z POST /v1/orders 201 12.8ms",
    "2025-03-14T11:13:42Z GET /v1/orders/1841 200 3.1ms",
    "2025-03-14T11:20:17Z WARN slow query: SELECT * FROM orders (412ms)",
    "2025-03-14T11:20:18Z GET /v1/orders?limit=50 200 431.0ms",
    "2025-03-14T11:31:55Z ERROR upstream timeout: payments.internal:443",
    "2025-03-14T11:31:56Z POST /v1/orders 502 5002.1ms",
    "2025-03-14T11:40:02Z GET /healthz 200 0.3ms",
    "2025-03-14T11:52:30Z POST /v1/orders 201 10.2ms",
    "2025-03-14T11:59:58Z GET /healthz 200 0.3ms",
]


class FakeStore:
    """Answers the store calls the app makes, from memory."""

    def __init__(self, *, redis_ok: bool = True, reaper_alive: bool = True) -> None:
        self.redis_ok = redis_ok
        self.reaper_alive = reaper_alive

    async def ping(self) -> None:
        if not self.redis_ok:
            raise StoreUnavailable(REDIS_DOWN)

    async def reapers(self) -> list[ReaperBeat]:
        if not self.redis_ok:
            raise StoreUnavailable(REDIS_DOWN)
        if not self.reaper_alive:
            return []
        return [ReaperBeat(host="devbox", pid=4242, last_seen=NOW.isoformat())]

    async def last_event_id(self) -> str:
        if not self.redis_ok:
            raise StoreUnavailable(REDIS_DOWN)
        return "0-0"

    async def close(self) -> None:
        return None


class FakeEngine:
    """Answers the engine calls the app makes, from memory."""

    def __init__(self, *, docker_ok: bool = True, present: set[str] | None = None) -> None:
        self.docker_ok = docker_ok
        self.present = present if present is not None else {"ubuntu:24.04", "alpine:3.20"}

    async def ping(self) -> str:
        if not self.docker_ok:
            raise EngineUnavailable(DOCKER_DOWN)
        return "27.5.1"

    async def image_present(self, ref: str) -> bool:
        if not self.docker_ok:
            raise EngineUnavailable(DOCKER_DOWN)
        return ref in self.present

    async def close(self) -> None:
        return None


class FakeService(LeaseService):
    """The real LeaseService over :class:`FakeStore` and :class:`FakeEngine` with fixed leases."""

    def __init__(
        self,
        settings: Settings | None = None,
        leases: list[Lease] | None = None,
        *,
        user: str = "alice",
        redis_ok: bool = True,
        docker_ok: bool = True,
        reaper_alive: bool = True,
        logs: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(
            settings or demo_settings(),
            FakeStore(redis_ok=redis_ok, reaper_alive=reaper_alive),  # type: ignore[arg-type]
            FakeEngine(docker_ok=docker_ok),  # type: ignore[arg-type]
            user=user,
            admin=False,
        )
        self.leases = leases if leases is not None else demo_leases()
        self.log_lines = logs if logs is not None else {"k7m2x9qa": DEMO_LOGS}
        self.log_feed: dict[str, asyncio.Queue[str]] = {}
        self.event_queue: asyncio.Queue[LeaseEvent] = asyncio.Queue()
        self.pull_gate = asyncio.Event()
        """:meth:`provision` pulls until this is set."""
        self._serial = 0

    def emit(self, type: EventType, lease_id: str, detail: str = "", at: datetime = NOW) -> None:
        """Put an event on the fake stream (the app's event worker picks it up)."""
        self._serial += 1
        owner = next((x.owner for x in self.leases if x.id == lease_id), "")
        self.event_queue.put_nowait(
            LeaseEvent(
                id=f"1-{self._serial}", type=type, lease=lease_id, owner=owner, at=at, detail=detail
            )
        )

    def feed(self, lease_id: str, *lines: str) -> None:
        """More output of a followed container."""
        queue = self.log_feed.setdefault(lease_id, asyncio.Queue())
        for line in lines:
            queue.put_nowait(line)

    async def list(self, *, all_users: bool = False) -> list[Lease]:
        if not self.store.redis_ok:  # type: ignore[attr-defined]
            raise ServiceUnavailable(REDIS_DOWN)
        return [x for x in self.leases if all_users or x.owner == self.user]

    async def events(self, after: str = "$", block_ms: int | None = 2000) -> EventBatch:
        if not self.store.redis_ok:  # type: ignore[attr-defined]
            raise ServiceUnavailable(REDIS_DOWN)
        try:
            first = await asyncio.wait_for(self.event_queue.get(), (block_ms or 2000) / 1000)
        except TimeoutError:
            return EventBatch([], after)
        out = [first]
        while not self.event_queue.empty():
            out.append(self.event_queue.get_nowait())
        return EventBatch(out, out[-1].id)

    async def logs(  # type: ignore[override]
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        for line in self.log_lines.get(lease.id, []):
            yield line
        if follow:
            queue = self.log_feed.setdefault(lease.id, asyncio.Queue())
            while True:
                yield await queue.get()

    async def provision(
        self,
        req: ProvisionRequest,
        *,
        on_progress: Callable[[PullProgress], None] | None = None,
        on_status: Callable[[Lease], None] | None = None,
    ) -> Lease:
        """Validates for real, then pretends to pull two layers and start a container."""
        lease = self.check(req)
        self.leases.append(lease)
        for status in (LeaseStatus.PULLING,):
            lease = lease.transition(status)
            if on_status:
                on_status(lease)
        for done, current in ((0, 40), (1, 100)):
            if on_progress:
                on_progress(PullProgress(f"layer{done}", "Downloading", current, 100, done, 2))
        await self.pull_gate.wait()
        lease = lease.transition(LeaseStatus.CREATING).model_copy(
            update={"docker_id": "c0ffee" * 10 + "abcd"}
        )
        lease = lease.transition(LeaseStatus.RUNNING)
        self.leases = [lease if x.id == lease.id else x for x in self.leases]
        if on_status:
            on_status(lease)
        return lease

    async def close(self) -> None:
        return None


def demo_app(**kwargs: Any) -> ContainerLeaseApp:
    """The app over a :class:`FakeService` with the fixed clock, no reaper."""
    from containerlease_tui.tui import create_app

    service = FakeService(**kwargs)
    return create_app(service.settings, service=service, reaper=False, clock=fixed_clock)
