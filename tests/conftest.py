"""Shared fixtures.

Integration tests use the private Docker engine and redis-server that ``scripts/test`` starts and
passes in ``CONTAINERLEASE_DOCKER_URL``, ``CONTAINERLEASE_REDIS_URL`` and
``CONTAINERLEASE_TEST_IMAGE``. Each test gets its own Redis key prefix, so tests never see each
other's leases, and every container a test leaves behind is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings

LABEL_LEASE = "containerlease.lease"
LABEL_INSTANCE = "containerlease.instance"
BUSYBOX_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done"]


# Tests under these folders talk to the real engine and Redis: marked by place, not by hand,
# so none is forgotten (`-m "not integration"` runs the rest without services).
_INTEGRATION_DIRS = ("integration",)


# tryfirst: xdist's worker reads the xdist_group marks in this same hook, to put the group in
# the node id (--dist loadgroup); marks added after it are ignored without a word.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts
        if parts and parts[0] in _INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)
        # Real pulls share one registry image, which each test drops from the engine after:
        # under `pytest -n` (--dist loadgroup) they run one after another on one worker.
        if "pull_image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("real-pull"))
        # The TUI tests are the CPU-bound part: one at a time, so the others' deadlines and
        # reapers (measured to the second) keep a core.
        elif parts and parts[0] == "tui" and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("tui"))


def _need(name: str) -> str:
    """The one policy for a missing service: the test fails, it never skips quietly (a run
    that skipped its integration tests must not look green). The only skips are the real-pull
    tests when the services come from outside and no private registry was started."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests through scripts/test")
    return value


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own ~/.config/containerlease."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("CONTAINERLEASE_CONFIG", raising=False)
    # A CLI test that makes a lease with no reaper alive would start a guardian reaper, which
    # would then reap that test's leases behind its back: only the guardian tests turn it on.
    monkeypatch.setenv("CONTAINERLEASE_REAPER_GUARDIAN", "false")


@pytest.fixture
def docker_url() -> str:
    return _need("CONTAINERLEASE_DOCKER_URL")


@pytest.fixture
def redis_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The shared redis-server, or, for a test marked ``own_redis`` (its fault is global to
    the server: FLUSHALL, ``maxmemory``), a private one of its own, so the tests running
    beside it under ``pytest -n`` keep their data."""
    shared = _need("CONTAINERLEASE_REDIS_URL")
    if request.node.get_closest_marker("own_redis") is None:
        yield shared
        return
    from tests.redis_server import RedisServer

    folder = tmp_path / "own-redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start_sync()
    # The environment outranks the config file: the private server must win there too.
    monkeypatch.setenv("CONTAINERLEASE_REDIS_URL", server.url)
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def test_image() -> str:
    return _need("CONTAINERLEASE_TEST_IMAGE")


@pytest.fixture
def key_prefix() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
def config_file(
    tmp_path: Path, docker_url: str, redis_url: str, test_image: str, key_prefix: str
) -> Path:
    """A config TOML for the private services, the busybox image and short leases."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_url}"
key_prefix = "{key_prefix}"

[docker]
url = "{docker_url}"

[images.busybox]
ref = "{test_image}"
hourly_rate = "0.36"
description = "busybox (offline test image)"
cmd = {json.dumps(BUSYBOX_CMD)}
memory = "64m"
cpus = 0.5
pids = 64

[images.offline]
ref = "registry.invalid/containerlease/nope:1"
hourly_rate = "0.01"
description = "an image no registry can serve"

[limits]
min_duration = "1s"
default_duration = "1h"
max_duration = "8h"
max_lifetime = "24h"
max_leases_per_user = 100
max_leases_total = 300

[reaper]
interval = "2s"
retries = 3
backoff = "50ms"
grace = "1s"
sweep_interval = "2s"
lock_ttl = "5s"
# Off in tests (a test's CLI lease would otherwise get a guardian reaper of its own behind the
# test's back); tests/integration/test_guardian.py turns it on.
guardian = false
"""
    )
    return path


@pytest.fixture
def settings(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from containerlease_tui.config import load_settings

    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(config_file))
    return load_settings()


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    async for key in client.scan_iter(match=f"{key_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def docker(docker_url: str) -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker(url=docker_url)
    yield client
    await client.close()


@pytest.fixture
async def cleanup_containers(docker_url: str, key_prefix: str) -> AsyncIterator[list[str]]:
    """Remove this test's leased containers when it ends; tests may append extra ids.

    A container is this test's when its instance label is the test's key prefix, so tests
    running side by side (``pytest -n``) leave each other alone.
    """
    extra: list[str] = []
    yield extra
    client = aiodocker.Docker(url=docker_url)
    try:
        found = await client.containers.list(all=True, filters={"label": [LABEL_LEASE]})
        ids = {
            c.id for c in found if c._container.get("Labels", {}).get(LABEL_INSTANCE) == key_prefix
        } | set(extra)
        for cid in ids:
            with contextlib.suppress(aiodocker.DockerError):
                await client.containers.container(cid).delete(force=True)
    finally:
        await client.close()


@pytest.fixture
def pull_image(docker_url: str) -> Iterator[str]:
    """An image only the private registry has (``scripts/test`` pushes it, then drops it from
    the engine), so provisioning it pulls for real; dropped again after the test."""
    ref = os.environ.get("CONTAINERLEASE_TEST_PULL_IMAGE")
    if not ref:
        pytest.skip("no private registry (scripts/test starts one next to its own engine)")
    yield ref

    async def drop() -> None:
        # Its containers first: an image still in use only loses its tag, and the layers it
        # keeps would make the next test's pull find them "already there".
        client = aiodocker.Docker(url=docker_url)
        try:
            with contextlib.suppress(aiodocker.DockerError):
                for container in await client.containers.list(
                    all=True, filters={"ancestor": [ref]}
                ):
                    await container.delete(force=True)
            with contextlib.suppress(aiodocker.DockerError):
                await client.images.delete(ref, force=True)
        finally:
            await client.close()

    asyncio.run(drop())


@pytest.fixture
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent
