"""Static proof, for ``mypy --strict``, that the real classes and the fakes are a Store and a
Runtime (nothing here runs: the functions are never called)."""

from __future__ import annotations

from containerlease_tui.engine import Engine
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.store import LeaseStore
from containerlease_tui.store.protocol import Store
from tests.fakes import FakeRuntime, MemoryStore


def _check_store(s: LeaseStore) -> Store:
    return s


def _check_runtime(e: Engine) -> Runtime:
    return e


def _check_memory_store(s: MemoryStore) -> Store:
    return s


def _check_fake_runtime(r: FakeRuntime) -> Runtime:
    return r
