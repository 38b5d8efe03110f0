"""Fixtures of the integration tests: the real store and engine over the private services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings
from containerlease_tui.engine import Engine
from containerlease_tui.store import LeaseStore


@pytest.fixture
async def store(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[LeaseStore]:
    """The real store over this test's key prefix (``redis_client`` removes its keys after)."""
    s = LeaseStore.from_settings(settings)
    yield s
    await s.close()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    e = Engine(settings.docker)
    yield e
    await e.close()
