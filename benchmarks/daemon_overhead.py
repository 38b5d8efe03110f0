"""What the daemon's hop costs: ``ls`` and ``provision`` through ``RemoteLeaseService`` over a
real unix socket vs the same ``LeaseService`` called directly, in one run, over the in-memory
store and runtime (so the numbers are the socket, HTTP and JSON alone, not Redis or Docker).

``python -m benchmarks.daemon_overhead [N]``: prints p50/p95 per path and the ratios. Against the
real engine and Redis, and with 50 concurrent clients, is still to do (see docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from containerlease_tui.daemon.client import RemoteLeaseService
from containerlease_tui.daemon.routes import Backend, application
from containerlease_tui.daemon.sockets import bind
from containerlease_tui.leases import LeaseService, ProvisionRequest
from tests.contract.test_fakes_end_to_end import REPORT, _settings
from tests.fakes.memory_store import MemoryStore
from tests.fakes.runtime import FakeRuntime


async def _times(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def main(n: int) -> None:
    base = _settings()
    limits = base.limits.model_copy(
        update={"max_leases_per_user": 10**6, "max_leases_total": 10**6, "daily_budget_hours": None}
    )
    settings = base.model_copy(update={"limits": limits})
    store = MemoryStore(settings)
    runtime = FakeRuntime(registry={"busybox:e2e": [REPORT]})
    direct = LeaseService(settings, store, runtime, user="bench", admin=False)
    folder = Path(tempfile.mkdtemp(prefix="cl-bench-"))
    folder.chmod(0o755)  # noqa: ASYNC240  (setup, before anything is measured)
    sock = bind(folder / "run" / "api.sock", 0o660, None)
    runner = web.AppRunner(
        application(Backend(settings, store, runtime, logging.getLogger("bench"))),
        access_log=None,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    remote = await RemoteLeaseService.connect(settings, folder / "run" / "api.sock")
    for _ in range(20):
        await direct.provision(ProvisionRequest("box", "1h"))
    results: dict[str, list[float]] = {}
    services = (("direct", direct), ("daemon", remote))
    for _ in range(2):  # interleaved rounds: both see the same list and the same load
        for name, svc in services:
            times = await _times(n // 2, lambda s=svc: s.list(all_users=True))
            results.setdefault(f"ls {name}", []).extend(times)
    for _ in range(2):
        for name, svc in services:
            times = await _times(n // 10, lambda s=svc: s.provision(ProvisionRequest("box", "1h")))
            results.setdefault(f"provision {name}", []).extend(times)
    for key, values in results.items():
        print(f"{key:18} p50 {statistics.median(values):7.2f} ms  p95 {_p(values, 95):7.2f} ms")
    for op in ("ls", "provision"):
        d = statistics.median(results[f"{op} direct"])
        r = statistics.median(results[f"{op} daemon"])
        print(f"{op:10} daemon/direct p50 ratio {r / d:6.2f}x, adds {r - d:6.2f} ms")
    await remote.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
