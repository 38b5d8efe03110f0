"""The contract fixtures: each gives the real implementation (marked ``integration``: it needs
the private redis-server / Docker engine of ``scripts/test``) or the in-memory fake, so one set
of tests holds both to the same behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from containerlease_tui.config import DockerSettings
from containerlease_tui.engine import Engine
from containerlease_tui.ports import Runtime, Store
from containerlease_tui.store import LeaseStore
from tests.fakes import FakeRuntime, MemoryStore

FAKE_IMAGE = "busybox:contract"
"""The local image of the fake runtime (the real one uses the offline busybox test image)."""
UNREACHABLE_IMAGE = "registry.invalid/containerlease/nope:1"
"""An image no registry can serve: ``.invalid`` never resolves."""


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
    settings = request.getfixturevalue("settings")
    request.getfixturevalue("redis_client")  # removes the test's keys afterwards
    real = LeaseStore.from_settings(settings)
    yield real
    await real.close()


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("docker", id="docker", marks=pytest.mark.integration),
    ]
)
async def runtime(request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    if request.param == "fake":
        yield FakeRuntime(present={FAKE_IMAGE})
        return
    request.getfixturevalue("cleanup_containers")  # removes the test's containers afterwards
    engine = Engine(DockerSettings(url=request.getfixturevalue("docker_url"), timeout=10))
    yield engine
    await engine.close()


@pytest.fixture
def image(runtime: Runtime, request: pytest.FixtureRequest) -> str:
    """An image the runtime has locally."""
    if isinstance(runtime, FakeRuntime):
        return FAKE_IMAGE
    value: str = request.getfixturevalue("test_image")
    return value
