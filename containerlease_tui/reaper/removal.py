"""Removing a lease's containers, by id and by label, with retries (reaping and the sweep)."""

from __future__ import annotations

import asyncio
import math
import time

from containerlease_tui import channel
from containerlease_tui.engine import ContainerInfo, EngineError, EngineUnavailable
from containerlease_tui.engine.cleanup import remove_lease_containers
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.labels import lease_of
from containerlease_tui.reaper.context import ReaperContext
from containerlease_tui.reaper.logs import one_line, short
from containerlease_tui.reaper.timing import retry_delay


class RemovalFailed(Exception):
    """Every removal attempt failed; the message is the last reason."""


class LabelIndex:
    """Our labelled containers by lease id, listed once per batch and shared by its workers."""

    def __init__(self, engine: Runtime, instance: str) -> None:
        self._engine = engine
        self._instance = instance
        self._lock = asyncio.Lock()
        self._at = -math.inf
        self._by_lease: dict[str, list[ContainerInfo]] | None = None
        self._error: EngineError | None = None
        self._error_at = -math.inf

    async def infos_of(self, lease_id: str, not_before: float = -math.inf) -> list[ContainerInfo]:
        """The containers labelled with ``lease_id`` (see :meth:`containers_of`)."""
        async with self._lock:
            if self._error is not None and self._error_at >= not_before:
                raise type(self._error)(str(self._error))
            if self._by_lease is None or self._at < not_before:
                at = time.monotonic()
                try:
                    infos = await self._engine.list_leased(instance=self._instance)
                except EngineError as exc:
                    self._error, self._error_at = exc, time.monotonic()
                    raise
                self._error = None
                by_lease: dict[str, list[ContainerInfo]] = {}
                for info in infos:
                    owner_lease = lease_of(info.labels, self._instance)
                    if owner_lease:
                        by_lease.setdefault(owner_lease, []).append(info)
                self._by_lease, self._at = by_lease, at
            return list(self._by_lease.get(lease_id, []))

    async def containers_of(self, lease_id: str, not_before: float) -> list[str]:
        """Ids of the containers labelled with ``lease_id``, from a listing made after
        ``not_before`` (monotonic seconds).

        A listing that failed after ``not_before`` fails the caller at once: when the engine
        hangs, one worker waits out the timeout, not every worker in turn.
        """
        return [info.id for info in await self.infos_of(lease_id, not_before)]


class Remover:
    """Removes a lease's containers; shared by reaping and the sweep's stalled provisions."""

    def __init__(self, ctx: ReaperContext) -> None:
        self._ctx = ctx
        self.refused: dict[str, str] = {}
        """Lease id → why its record's ``docker_id`` was left alone (not that lease's
        container), for the caller to take (``pop``) into the lease's event."""

    def index(self) -> LabelIndex:
        """A fresh label index, for one batch of removals."""
        return LabelIndex(self._ctx.engine, self._ctx.prefix)

    async def remove_with_retries(
        self, lease_id: str, docker_id: str | None, index: LabelIndex
    ) -> list[str]:
        """Remove the lease's container (by id and by label); the ids removed.

        Raises :class:`RemovalFailed` once ``retries`` attempts have failed, and
        :class:`EngineUnavailable` at once when the engine cannot be reached (that is not an
        attempt: the lease is neither marked failed nor postponed for it).
        """
        cfg, timeout = self._ctx.settings.reaper, self._ctx.removal_timeout
        not_before = -math.inf
        reason = "no attempt made"
        for attempt in range(cfg.retries):
            if attempt:
                await asyncio.sleep(retry_delay(attempt - 1, cfg.backoff))
            try:
                async with asyncio.timeout(timeout):
                    return await self._remove_all(lease_id, docker_id, index, not_before)
            except TimeoutError:
                reason = f"removal did not finish within {timeout:g}s"
            except EngineUnavailable:
                # Not this lease's failure: no attempt is counted while the engine is away
                # (the loop waits for it to answer, then tries again at once).
                self._ctx.engine_down = True
                raise
            except EngineError as exc:
                reason = one_line(exc)
            not_before = time.monotonic()  # the next attempt lists the containers afresh
            self._ctx.log.debug(
                "removal attempt failed",
                extra={
                    "action": "retry",
                    "lease": lease_id,
                    "attempt": attempt + 1,
                    "error": reason,
                },
            )
        raise RemovalFailed(reason)

    async def _remove_all(
        self, lease_id: str, docker_id: str | None, index: LabelIndex, not_before: float
    ) -> list[str]:
        labelled = await index.containers_of(lease_id, not_before)
        done = await remove_lease_containers(
            self._ctx.engine, lease_id, docker_id, self._ctx.prefix, labelled=labelled
        )
        if done.refused is not None:
            self.refused[lease_id] = str(done.refused)
            self._ctx.log.warning(
                "refused to act on a container that is not the lease's",
                extra={
                    "action": "refuse",
                    "lease": lease_id,
                    "container": short(done.refused.cid),
                    "error": str(done.refused),
                },
            )
        if done.pending:
            raise EngineError(f"container {short(done.pending[0])} is still being removed")
        # Its message channel's folder, when it lives on this machine under this user.
        channel.discard(self._ctx.settings.docker.channels(), lease_id)
        return list(done.removed)
