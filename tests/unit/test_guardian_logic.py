"""The guardian's reasons to stay or leave, over the in-memory store (held to the real one by
tests/contract): it stays through an outage, and leaves once the store is gone for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from containerlease_tui.reaper import guardian
from tests.fakes.memory_store import MemoryStore


async def test_an_outage_keeps_the_guardian_and_a_store_gone_for_good_ends_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(guardian, "WATCH_PERIOD", 0.01)
    monkeypatch.setattr(guardian, "GIVE_UP_AFTER", 0.3)
    store = MemoryStore()
    token = await store.take_guardian(guardian.LOCK_TTL)
    assert token
    store.down = "connection refused"
    log = logging.getLogger("test.guardian")
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="test.guardian"):
        watcher = asyncio.create_task(guardian._watch(store, token, stop, log))
        await asyncio.sleep(0.1)
        assert not stop.is_set()  # an outage: it stays
        async with asyncio.timeout(5):
            await watcher
    assert stop.is_set()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("the store does not answer; staying") == 1  # once, not every beat
    assert any("leaving" in m for m in messages)
