"""The optimistic transaction every change after the insert uses: WATCH, read, MULTI, EXEC —
retried when a watched key changed in between, a bounded number of times."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

from redis.exceptions import WatchError

from containerlease_tui.store.errors import LeaseContended

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline

T = TypeVar("T")

MAX_WATCH_CONFLICTS: Final = 25
"""Attempts before an optimistic change gives up with :class:`LeaseContended` (a
:class:`LeaseBusy`). A conflict means
another writer changed a watched key between the read and the write; 25 in a row is not
contention any more but a key that never holds still (a runaway writer), and retrying forever
would hang the caller."""


async def optimistic(
    client: aioredis.Redis, attempt: Callable[[Pipeline], Awaitable[T]], *, what: str
) -> T:
    """Run ``attempt`` on a transaction pipeline until its EXEC goes through.

    ``attempt`` WATCHes what it reads, reads it, calls ``pipe.multi()``, queues its writes and
    executes them; anything it raises before EXEC leaves nothing written. After
    :data:`MAX_WATCH_CONFLICTS` conflicts it raises :class:`LeaseContended` (a
    :class:`LeaseBusy`) naming ``what``.
    """
    async with client.pipeline(transaction=True) as pipe:
        for _ in range(MAX_WATCH_CONFLICTS):
            try:
                return await attempt(pipe)
            except WatchError:
                continue  # execute() has reset the pipeline: WATCH and read again
    raise LeaseContended(
        f"{what} kept changing while being updated ({MAX_WATCH_CONFLICTS} conflicting writes "
        "in a row); nothing was changed, try again"
    )
