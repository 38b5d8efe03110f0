"""Provision latency: request → container running, ours against two references.

* **ours** — :meth:`LeaseService.provision` (validation, quota-checked insert, every status step
  recorded in Redis, create, start), on a service that stays open as the TUI's does.
* **bare aiodocker** — ``containers.create`` + ``start`` with the very same create body, on a
  client that stays open: the floor for anything written on aiodocker.
* **docker run -d** — the Docker CLI with equivalent flags, one process per request.

Sequential requests interleave the three methods (in a shuffled order each round, each after
100 ms of quiet), so drift in a noisy machine, or what one start leaves the engine doing, hits
them alike. Concurrent batches fire N requests at once; each request's
latency counts from the batch start. Containers are removed between batches (not timed).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiodocker

from benchmarks.common import (
    IMAGE_NAME,
    KEEPALIVE,
    BenchEnv,
    Result,
    cli_run_args,
    container_config,
    goal,
    log,
    make_settings,
    new_prefix,
    open_service,
    ratio,
    remove_instance,
    rounded,
    summarize,
)
from containerlease_tui.engine import LABEL_INSTANCE
from containerlease_tui.leases import LeaseService, ProvisionRequest
from containerlease_tui.models import LeaseStatus

OURS = "ours"
BARE = "bare_aiodocker"
CLI = "docker_cli"
OVERHEAD_GOAL = 1.10
QUIET = 0.1
"""Seconds of idle engine before each sequential request (ten times that before a batch)."""


class _Methods:
    """The three ways to get a running container, each a coroutine returning when it runs."""

    def __init__(self, env: BenchEnv, prefix: str, docker: aiodocker.Docker) -> None:
        self.env = env
        self.prefix = prefix
        self.docker = docker
        self.service: LeaseService | None = None
        self._n = 0
        self.engine_time: list[float] = []
        """Per ours-request: seconds spent inside Engine.create + Engine.start."""
        self.own_time: list[float] = []
        """Per ours-request: its total time minus the time inside Engine.create + start."""

    def use_service(self, service: LeaseService) -> None:
        """Provision through ``service`` from now on; time its engine calls."""
        self.service = service
        engine = service.engine
        create, start = engine.create, engine.start
        spent: dict[int, float] = {}

        async def timed_create(spec: Any) -> str:
            t0 = time.perf_counter()
            try:
                return await create(spec)
            finally:
                key = id(asyncio.current_task())
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0

        async def timed_start(cid: str) -> None:
            t0 = time.perf_counter()
            try:
                await start(cid)
            finally:
                key = id(asyncio.current_task())
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0

        engine.create = timed_create  # type: ignore[method-assign]
        engine.start = timed_start  # type: ignore[method-assign]
        self._spent = spent

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{self.prefix}-{kind}-{self._n}"

    async def ours(self) -> None:
        assert self.service is not None
        t0 = time.perf_counter()
        lease = await self.service.provision(ProvisionRequest(image=IMAGE_NAME, duration="1h"))
        total = time.perf_counter() - t0
        if lease.status is not LeaseStatus.RUNNING:
            raise RuntimeError(f"lease ended {lease.status.value}")
        engine = self._spent.pop(id(asyncio.current_task()), 0.0)
        self.engine_time.append(engine)
        self.own_time.append(total - engine)

    async def bare(self) -> None:
        labels = {LABEL_INSTANCE: self.prefix}
        config = container_config(self.env.image, labels, KEEPALIVE)
        container = await self.docker.containers.create(config, name=self._name("bare"))
        await container.start()

    async def cli(self) -> None:
        assert self.env.docker_cli is not None
        labels = {LABEL_INSTANCE: self.prefix}
        args = cli_run_args(self.env.image, self._name("cli"), labels, KEEPALIVE)
        proc = await asyncio.create_subprocess_exec(
            self.env.docker_cli,
            "-H",
            self.env.docker_url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "DOCKER_CLI_HINTS": "false"},
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"docker run failed: {err.decode(errors='replace').strip()}")
        if len(out.strip()) < 12:
            raise RuntimeError("docker run printed no container id")


async def _timed(call: Callable[[], Awaitable[None]]) -> float:
    t0 = time.perf_counter()
    await call()
    return time.perf_counter() - t0


async def _batch(call: Callable[[], Awaitable[None]], n: int) -> list[float]:
    """Fire ``n`` calls at once; each one's latency from the common start."""
    start = time.perf_counter()

    async def one() -> float:
        await call()
        return time.perf_counter() - start

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def run(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """Measure sequential and concurrent provisioning; returns the ``provision`` result."""
    sequential_n = 5 if env.quick else 20
    concurrent_n = 10 if env.quick else 50
    rounds = 1 if env.quick else 2
    warmup = 2
    prefix = new_prefix(env, "prov")
    settings = make_settings(env, prefix)
    docker = aiodocker.Docker(url=env.docker_url)
    methods = _Methods(env, prefix, docker)
    calls: dict[str, Callable[[], Awaitable[None]]] = {OURS: methods.ours, BARE: methods.bare}
    notes: list[str] = []
    if env.docker_cli and os.access(env.docker_cli, os.X_OK):
        calls[CLI] = methods.cli
    else:
        notes.append("the docker CLI was not found: the `docker run -d` reference is skipped")
    names = list(calls)
    seq: dict[str, list[float]] = {name: [] for name in names}
    conc: dict[str, list[float]] = {name: [] for name in names}
    seq_engine: list[float] = []
    conc_engine: list[float] = []
    seq_own: list[float] = []
    conc_own: list[float] = []
    services: list[LeaseService] = []
    try:
        # --- sequential, interleaved -------------------------------------------------------
        rng = random.Random(11)
        for r in range(rounds):
            service = open_service(settings, f"bench-seq{r}")
            services.append(service)
            methods.use_service(service)
            if r == 0:
                log(f"provision: warm-up ({warmup} of each)")
                for _ in range(warmup):
                    for name in names:
                        await calls[name]()
            methods.engine_time.clear()
            methods.own_time.clear()
            log(
                f"provision: {sequential_n} sequential requests of each method, interleaved "
                f"(round {r + 1})"
            )
            for _ in range(sequential_n):
                order = rng.sample(names, len(names))
                for name in order:
                    # Start from a quiet engine: the previous start's aftermath is nobody's cost.
                    await asyncio.sleep(QUIET)
                    seq[name].append(await _timed(calls[name]))
            seq_engine.extend(methods.engine_time)
            seq_own.extend(methods.own_time)
            await remove_instance(docker, prefix)

        # --- concurrent batches ------------------------------------------------------------
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                if name == OURS:
                    service = open_service(settings, f"bench-conc{r}")
                    services.append(service)
                    methods.use_service(service)
                    # Connections are opened by a first call, as in a running app.
                    await service.store.ping()
                    await service.engine.ping()
                    methods.engine_time.clear()
                    methods.own_time.clear()
                log(f"provision: {concurrent_n} concurrent requests, {name} (round {r + 1})")
                await asyncio.sleep(10 * QUIET)
                conc[name].extend(await _batch(calls[name], concurrent_n))
                if name == OURS:
                    conc_engine.extend(methods.engine_time)
                    conc_own.extend(methods.own_time)
                await remove_instance(docker, prefix)
    finally:
        for service in services:
            await service.close()
        await remove_instance(docker, prefix)
        await docker.close()

    results: dict[str, Any] = {
        "sequential": {name: summarize(seq[name]) for name in names},
        "concurrent": {name: summarize(conc[name]) for name in names},
        "ours_engine_share": {
            "sequential": summarize(seq_engine),
            "concurrent": summarize(conc_engine),
        },
        "ours_own_time": {
            "sequential": summarize(seq_own),
            "concurrent": summarize(conc_own),
        },
    }
    ratios: dict[str, Any] = {}
    for phase in ("sequential", "concurrent"):
        ours = results[phase][OURS]
        ratios[phase] = {
            f"ours/{ref}": {
                "p50": rounded(ratio(ours["p50"], results[phase][ref]["p50"]), 4),
                "p95": rounded(ratio(ours["p95"], results[phase][ref]["p95"]), 4),
            }
            for ref in names
            if ref != OURS
        }
        own = results["ours_own_time"][phase]["p50"]
        ratios[phase]["ours own work/bare_aiodocker p50"] = rounded(
            ratio(own, results[phase][BARE]["p50"]), 4
        )
    goals = []
    for phase in ("sequential", "concurrent"):
        r50 = ratios[phase][f"ours/{BARE}"]["p50"]
        r95 = ratios[phase][f"ours/{BARE}"]["p95"]
        own = ratios[phase]["ours own work/bare_aiodocker p50"]
        why = []
        if r95 is not None:
            why.append(f"p95 ratio {r95:.3f}")
        if own is not None:
            why.append(f"ours' own work (total minus create+start) {own:.3f}x bare's p50")
        goals.append(
            goal(
                f"provision overhead over bare aiodocker ({phase}, p50)",
                f"< {OVERHEAD_GOAL:.2f}x",
                r50,
                None if r50 is None else r50 < OVERHEAD_GOAL,
                "; ".join(why),
            )
        )
    return Result(
        benchmark="provision",
        machine=machine,
        params={
            "sequential_n": sequential_n,
            "sequential_rounds": rounds,
            "concurrent_n": concurrent_n,
            "concurrent_rounds": rounds,
            "warmup": warmup,
            "image": env.image,
            "container": "busybox keep-alive shell, 64 MiB, 0.5 CPU, 64 pids, init, caps dropped",
            "methods": names,
        },
        results=results,
        ratios=ratios,
        goals=goals,
        notes=notes,
    )
