"""Fixed data and the real LeaseService over the in-memory store and runtime of
``tests/fakes`` for the pure rendering tests (snapshots and screenshots); nothing here talks to
Redis or Docker.
"""

from __future__ import annotations

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
from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    PullProgress,
)
from containerlease_tui.leases import LeaseService
from containerlease_tui.models import EventType, Lease, LeaseStatus, Resources
from containerlease_tui.store import ReaperBeat
from tests.fakes import FakeRuntime, MemoryStore

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


PULL_REPORTS = [
    PullProgress("layer0", "Downloading", 40, 100, 0, 2),
    PullProgress("layer1", "Downloading", 100, 100, 1, 2),
]
"""What pulling any catalog image reports (then it waits for :attr:`FakeService.pull_gate`)."""


class FakeService(LeaseService):
    """The real LeaseService over a :class:`MemoryStore` and a :class:`FakeRuntime` that hold
    the fixed leases, their containers and logs, and a live reaper's heartbeat.

    Only the constructor and test controls are added; every LeaseService method is the real
    one. ``store`` and ``engine`` are the fakes, also typed as :attr:`memory` and
    :attr:`runtime`.
    """

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
        present: set[str] | None = None,
    ) -> None:
        settings = settings or demo_settings()
        self.memory = MemoryStore(settings)
        self.runtime = FakeRuntime(
            present=present if present is not None else {"ubuntu:24.04", "alpine:3.20"},
            registry={spec.ref: list(PULL_REPORTS) for spec in settings.images.values()},
        )
        super().__init__(settings, self.memory, self.runtime, user=user, admin=False)
        log_lines = logs if logs is not None else {"k7m2x9qa": DEMO_LOGS}
        for lease in leases if leases is not None else demo_leases():
            self.memory.put(lease)
            if lease.docker_id and lease.status in (LeaseStatus.RUNNING, LeaseStatus.STOPPED):
                self.runtime.add_container(
                    lease.docker_id,
                    lease.container_name,
                    image_ref=lease.image_ref,
                    labels={
                        LABEL_LEASE: lease.id,
                        LABEL_OWNER: lease.owner,
                        LABEL_EXPIRES: lease.expires_at.isoformat().replace("+00:00", "Z"),
                        LABEL_INSTANCE: settings.redis.key_prefix,
                    },
                    state="running" if lease.status is LeaseStatus.RUNNING else "exited",
                    logs=log_lines.get(lease.id, []),
                    created_at=lease.created_at,
                    exit_code=0,
                )
        if reaper_alive:
            self.memory.put_heartbeat(
                ReaperBeat(host="devbox", pid=4242, last_seen=NOW.isoformat())
            )
        if not redis_ok:
            self.memory.down = REDIS_DOWN
        if not docker_ok:
            self.runtime.down = DOCKER_DOWN
        self.pull_gate = self.runtime.pull_gate
        """A pull waits, after its progress reports, until this is set."""
        self.pull_gate.clear()

    @property
    def leases(self) -> list[Lease]:
        """Every lease in the store, in the order it was first written."""
        return self.memory.leases

    @leases.setter
    def leases(self, leases: list[Lease]) -> None:
        for lease in leases:
            self.memory.put(lease)

    def emit(self, type: EventType, lease_id: str, detail: str = "", at: datetime = NOW) -> None:
        """Put an event on the stream (the app's event worker picks it up)."""
        owner = next((x.owner for x in self.memory.leases if x.id == lease_id), "")
        self.memory.add_event(type, lease_id, owner, detail, at)

    def feed(self, lease_id: str, *lines: str) -> None:
        """More output of a lease's running container."""
        lease = next(x for x in self.memory.leases if x.id == lease_id)
        assert lease.docker_id is not None
        self.runtime.feed(lease.docker_id, *lines)


def demo_app(**kwargs: Any) -> ContainerLeaseApp:
    """The app over a :class:`FakeService` with the fixed clock, no reaper."""
    from containerlease_tui.tui import create_app

    service = FakeService(**kwargs)
    return create_app(
        service.settings, service=service, reaper=False, clock=fixed_clock, all_users=True
    )
