"""Coordination between processes: reaper claims on due leases, expiry warnings sent once,
reaper heartbeats, and provisioning liveness — short-lived keys with TTLs, never records."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from containerlease_tui.models import utcnow
from containerlease_tui.store.base import StoreBase, run_script
from containerlease_tui.store.codec import optional_text, texts
from containerlease_tui.store.errors import StoreUnavailable


@dataclass
class ReaperBeat:
    """A reaper's heartbeat: who it is and what it has done."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = ""
    mode: str = "headless"
    started_at: str = field(default_factory=lambda: utcnow().isoformat())
    last_seen: str = field(default_factory=lambda: utcnow().isoformat())
    last_pass: str | None = None
    passes: int = 0
    reaped: int = 0
    failed: int = 0
    ttl_seconds: float = 30.0

    @property
    def key(self) -> str:
        """Its member name in ``Keys.reapers`` (``Keys.reaper(key)`` is its own key)."""
        return f"{self.host}:{self.pid}"

    @property
    def last_seen_at(self) -> datetime:
        return datetime.fromisoformat(self.last_seen)


def decode_beat(raw: str | None) -> ReaperBeat | None:
    if not raw:
        return None
    try:
        return ReaperBeat(**json.loads(raw))
    except (TypeError, ValueError):
        return None  # written by another version: treat as absent


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


class Coordination(StoreBase):
    """Claims, warnings, heartbeats and provisioning liveness."""

    # --- reaper claims ---------------------------------------------------------------------

    async def claim(self, lease_id: str, ttl: timedelta) -> str | None:
        """Claim a due lease for one reaper: a random token if won, else None."""
        return await self._take(self.keys.claim(lease_id), ttl)

    async def release_claim(self, lease_id: str, token: str) -> bool:
        """Drop the claim if ``token`` still holds it (True: it did)."""
        return await self._drop(self.keys.claim(lease_id), token)

    async def extend_claim(self, lease_id: str, token: str, ttl: timedelta) -> bool:
        """Keep the claim for another ``ttl`` if ``token`` still holds it (True: it did)."""
        return await self._keep(self.keys.claim(lease_id), token, ttl)

    async def take_guardian(self, ttl: timedelta) -> str | None:
        """Become this installation's one guardian reaper: a token if won, else None."""
        return await self._take(self.keys.guardian, ttl)

    async def keep_guardian(self, token: str, ttl: timedelta) -> bool:
        """Hold the guardian lock another ``ttl`` (False: it was lost)."""
        return await self._keep(self.keys.guardian, token, ttl)

    async def drop_guardian(self, token: str) -> bool:
        """Give the guardian lock up if ``token`` still holds it."""
        return await self._drop(self.keys.guardian, token)

    async def _take(self, key: str, ttl: timedelta) -> str | None:
        token = secrets.token_hex(16)
        return token if await self._set_nx(key, token, int(ttl.total_seconds() * 1000)) else None

    async def _set_nx(self, key: str, value: str, px: int) -> bool:
        """``SET key value NX PX px``, verified: True when ``value`` holds the key.

        A SET NX is not idempotent: when its reply is lost the client resends it, and the
        resent one finds the key taken by the first, or the error surfaces although the first
        went through. ``value`` is unique to this call, so reading the key back tells: if it
        holds ``value``, the key is ours whatever the replies said.
        """
        try:
            ok = await self._call(lambda: self.redis.set(key, value, nx=True, px=px))
        except StoreUnavailable:
            if await self._holds(key, value):  # the first SET went through; its reply was lost
                return True
            raise
        return bool(ok) or await self._holds(key, value)

    async def _holds(self, key: str, value: str) -> bool:
        """Whether ``key`` holds ``value`` (False too when Redis cannot tell us)."""
        try:
            return optional_text(await self._call(self.redis.get, key)) == value
        except StoreUnavailable:
            return False

    async def _drop(self, key: str, token: str) -> bool:
        return bool(await self._call(run_script, self._release_claim, [key], [token]))

    async def _keep(self, key: str, token: str, ttl: timedelta) -> bool:
        reply = await self._call(
            run_script, self._extend_claim, [key], [token, int(ttl.total_seconds() * 1000)]
        )
        return bool(reply)

    # --- the data set's epoch --------------------------------------------------------------

    async def epoch(self) -> tuple[str, bool]:
        """This data set's epoch token, and whether this call wrote it (it was missing).

        The token is written once and never expires: when it is gone, Redis lost its data
        (FLUSHALL, a restart without persistence, eviction). Read first, so a Redis that
        refuses writes still answers while the token is there.
        """
        key = self.keys.epoch
        current = optional_text(await self._call(self.redis.get, key))
        if current:
            return current, False
        token = secrets.token_hex(8)
        if await self._call(lambda: self.redis.set(key, token, nx=True)):
            return token, True
        return optional_text(await self._call(self.redis.get, key)) or token, False

    async def warn_once(self, lease_id: str, before: timedelta, ttl: timedelta) -> bool:
        """True the first time this warning point is reached for this lease."""
        token = secrets.token_hex(8)  # unique: a resent SET NX is told from another reaper's
        ok = await self._set_nx(
            self.keys.warned(lease_id, before), token, max(1, int(ttl.total_seconds())) * 1000
        )
        return ok

    # --- reaper heartbeats -----------------------------------------------------------------

    async def heartbeat(self, beat: ReaperBeat) -> None:
        """Refresh this reaper's key (it expires by itself ``ttl_seconds`` after the last beat)."""
        beat.last_seen = utcnow().isoformat()
        k = self.keys
        ttl_ms = max(1, int(beat.ttl_seconds * 1000))

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(k.reaper(beat.key), json.dumps(asdict(beat)), px=ttl_ms)
                pipe.sadd(k.reapers, beat.key)
                await pipe.execute()

        await self._call(run)

    async def drop_heartbeat(self, beat: ReaperBeat) -> None:
        k = self.keys

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(k.reaper(beat.key))
                pipe.srem(k.reapers, beat.key)
                await pipe.execute()

        await self._call(run)

    async def reapers(self) -> list[ReaperBeat]:
        """Reapers whose heartbeat key has not expired; index entries of dead ones are dropped."""
        k = self.keys
        members = sorted(texts(await self._call(self.redis.smembers, k.reapers)))
        if not members:
            return []
        raws = await self._call(self.redis.mget, [k.reaper(member) for member in members])
        alive: list[ReaperBeat] = []
        dead: list[str] = []
        for member, raw in zip(members, raws, strict=True):
            beat = decode_beat(optional_text(raw))
            if beat is None:
                dead.append(member)
            else:
                alive.append(beat)
        if dead:
            await self._call(self.redis.srem, k.reapers, *dead)
        return alive

    # --- provisioning liveness -------------------------------------------------------------

    async def provisioning_start(self, lease_id: str, ttl: timedelta) -> bool:
        """Become the one process provisioning this lease (False: another one is)."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        return await self._set_nx(self.keys.provisioning(lease_id), holder, _ms(ttl))

    async def provisioning_beat(self, lease_id: str, ttl: timedelta) -> None:
        """Still provisioning: keep the key from :meth:`provisioning_start` alive for ``ttl``."""
        await self._call(self.redis.pexpire, self.keys.provisioning(lease_id), _ms(ttl))

    async def provisioning_done(self, lease_id: str) -> None:
        await self._call(self.redis.delete, self.keys.provisioning(lease_id))

    async def provisioning_alive(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` some live process is provisioning right now."""
        if not ids:
            return set()
        raws = await self._call(
            self.redis.mget, [self.keys.provisioning(lease_id) for lease_id in ids]
        )
        return {lease_id for lease_id, raw in zip(ids, raws, strict=True) if raw}
