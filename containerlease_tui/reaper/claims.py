"""Claims: a reaper's short-lived lock on one lease, so exactly one reaper works on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from containerlease_tui.reaper.context import ReaperContext
from containerlease_tui.reaper.timing import CLEANUP_TIMEOUT
from containerlease_tui.store import StoreError


class Claims:
    """The claims this reaper holds right now: taken, kept alive while the work lasts, released.

    Every job that changes a lease or removes its container does it inside :meth:`claimed`.
    """

    def __init__(self, ctx: ReaperContext) -> None:
        self._ctx = ctx
        self._held: dict[str, str] = {}  # lease id → token

    @contextlib.asynccontextmanager
    async def claimed(self, lease_id: str) -> AsyncIterator[bool]:
        """Claim ``lease_id`` for the body; yields False (and holds nothing) when another
        reaper has it. Released by compare-and-delete however the body ends."""
        token = await self._ctx.store.claim(lease_id, self._ctx.lock_ttl)
        if token is None:
            yield False
            return
        self._held[lease_id] = token
        try:
            yield True
        finally:
            if self._held.get(lease_id) == token:
                del self._held[lease_id]
            await self._release(lease_id, token)

    async def keep(self) -> None:
        """Extend held claims while their work lasts, so a slow removal keeps its lease."""
        ttl = self._ctx.lock_ttl
        # Renewed every quarter of its TTL: a short TTL (a dead reaper's claims block others
        # only that long) survives a missed renewal or two.
        period = max(ttl.total_seconds() / 4, 0.05)
        while True:
            await asyncio.sleep(period)
            for lease_id, token in list(self._held.items()):
                try:
                    kept = await self._ctx.store.extend_claim(lease_id, token, ttl)
                except StoreError:
                    continue
                if not kept and self._held.get(lease_id) == token:
                    self._ctx.log.warning(
                        "claim lost", extra={"action": "claim-lost", "lease": lease_id}
                    )

    async def release_all(self) -> None:
        """Let go of every claim still held (the run is ending)."""
        held, self._held = dict(self._held), {}
        for lease_id, token in held.items():
            await self._release(lease_id, token)

    async def _release(self, lease_id: str, token: str) -> None:
        # Best effort: an unreleased claim expires by itself after lock_ttl.
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await self._ctx.store.release_claim(lease_id, token)
