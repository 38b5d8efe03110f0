"""The client, the settings and the one typed wrapper every Redis call goes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from containerlease_tui.config import Settings
from containerlease_tui.store import scripts
from containerlease_tui.store.errors import map_redis_error, unreachable
from containerlease_tui.store.keys import Keys

P = ParamSpec("P")
T = TypeVar("T")


def connect(settings: Settings) -> aioredis.Redis:
    """A decoding client for ``[redis]``: short timeouts, a couple of retries on reconnect."""
    cfg = settings.redis
    extra: dict[str, object] = {}
    if cfg.tls_ca is not None:
        extra["ssl_ca_certs"] = str(cfg.tls_ca)
    return aioredis.Redis.from_url(
        cfg.url,
        decode_responses=True,
        socket_timeout=cfg.socket_timeout,
        socket_connect_timeout=min(cfg.socket_timeout, 3.0),
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
        **extra,  # type: ignore[arg-type]  # from_url types each keyword; these are valid
    )


async def run_script(
    script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]
) -> object:
    """Run a registered script (redis-py leaves its reply unannotated: here it is ``object``,
    for the caller to narrow)."""
    reply: object = await script(keys=keys, args=args)
    return reply


class StoreBase:
    """What every part of the store shares: the client, the key schema, the scripts, and
    :meth:`_call`, through which every Redis call goes."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.redis.key_prefix)
        self._retention = settings.redis.retention
        self._maxlen = settings.redis.stream_maxlen
        self._insert = client.register_script(scripts.INSERT)
        self._release_claim = client.register_script(scripts.RELEASE_CLAIM)
        self._extend_claim = client.register_script(scripts.EXTEND_CLAIM)

    async def _call(
        self, make: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``await make(*args, **kwargs)``, with redis-py's errors (and the socket's) mapped to
        the store's: :class:`StoreUnavailable` when Redis cannot be reached, else
        :class:`StoreError`. The result keeps ``make``'s own type."""
        try:
            return await make(*args, **kwargs)
        except RedisError as exc:
            raise map_redis_error(exc, self.settings.redis.url) from None
        except OSError as exc:
            raise unreachable(self.settings.redis.url, exc) from None
