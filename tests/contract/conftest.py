"""The contract fixtures: each gives the real implementation (marked ``integration``: it needs
the private redis-server / Docker engine of ``scripts/test``) or the in-memory fake, so one set
of tests holds both to the same behaviour."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import DockerSettings, Settings
from containerlease_tui.engine import LABEL_INSTANCE, Engine
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.store import LeaseStore
from containerlease_tui.store.protocol import Store
from tests.fakes import FakeRuntime, MemoryStore

FAKE_IMAGE = "busybox:contract"
"""The local image of the fake runtime (the real one uses the offline busybox test image)."""
UNREACHABLE_IMAGE = "registry.invalid/containerlease/nope:1"
"""An image no registry can serve: ``.invalid`` never resolves."""


@pytest.fixture
def instance() -> str:
    """The instance label of this test's containers (its cleanup removes those)."""
    return f"c{secrets.token_hex(4)}"


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    # Sync fixtures only: an async one cannot be requested from inside an async fixture.
    settings: Settings = request.getfixturevalue("settings")
    real = LeaseStore.from_settings(settings)
    yield real
    await real.close()
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    async for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("docker", id="docker", marks=pytest.mark.integration),
    ]
)
async def runtime(request: pytest.FixtureRequest, instance: str) -> AsyncIterator[Runtime]:
    if request.param == "fake":
        yield FakeRuntime(present={FAKE_IMAGE})
        return
    engine = Engine(DockerSettings(url=request.getfixturevalue("docker_url"), timeout=10))
    yield engine
    for info in await engine.list_leased():  # this test's containers, whatever happened
        if info.labels.get(LABEL_INSTANCE, "").startswith(instance):
            await engine.remove(info.id)
    await engine.close()


@pytest.fixture
def image(runtime: Runtime, request: pytest.FixtureRequest) -> str:
    """An image the runtime has locally."""
    if isinstance(runtime, FakeRuntime):
        return FAKE_IMAGE
    value: str = request.getfixturevalue("test_image")
    return value
