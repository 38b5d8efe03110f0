"""In-memory implementations of the core's two ports (:mod:`containerlease_tui.ports`), held to
the real store's and engine's behaviour by the contract tests under ``tests/contract``."""

from __future__ import annotations

from .memory_store import MemoryStore
from .runtime import FakeRuntime

__all__ = ["FakeRuntime", "MemoryStore"]
