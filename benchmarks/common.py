"""What every benchmark shares: the environment, settings, statistics, Docker events, results.

Nothing here measures anything by itself. Every container a benchmark creates carries the
``containerlease.instance`` label of a key prefix registered with :func:`new_prefix`, and
:func:`cleanup` removes exactly those containers and those keys — never anybody else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import redis.asyncio as aioredis

from containerlease_tui.config import (
    DockerSettings,
    ImageSpec,
    LimitSettings,
    ReaperSettings,
    RedisSettings,
    Settings,
)
from containerlease_tui.engine import LABEL_INSTANCE, Engine, _compat
from containerlease_tui.leases import KEEPALIVE_CMD, LeaseService
from containerlease_tui.store import LeaseStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"

IMAGE_NAME = "busybox"
"""The catalog name every benchmark leases (the offline busybox image)."""
MEMORY = 64 * 1024**2
CPUS = 0.5
PIDS = 64
CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL"]
"""The default ``[security] cap_allowlist``: what ``create`` keeps, for the references too."""

_PREFIXES: set[str] = set()


def log(text: str) -> None:
    """Progress goes to stderr, so stdout stays for the table."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- environment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchEnv:
    """Where the services are and how big a run is."""

    docker_url: str
    redis_url: str
    image: str
    quick: bool
    base: str
    """Key prefix stem of this run; every prefix used starts with it."""
    docker_cli: str | None
    store_redis_url: str | None = None
    """A private redis-server for the store-scaling records (None: started on demand)."""
    interval: float = 5.0
    """Reaper poll interval (seconds) used by ours and by the baselines alike."""
    results: Path = RESULTS

    @classmethod
    def from_environ(cls, *, quick: bool, interval: float, results: Path = RESULTS) -> BenchEnv:
        """The services ``scripts/bench`` (or ``scripts/test``) exported."""
        missing = [
            name
            for name in ("CONTAINERLEASE_DOCKER_URL", "CONTAINERLEASE_REDIS_URL")
            if not os.environ.get(name)
        ]
        if missing:
            raise SystemExit(
                f"{' and '.join(missing)} not set: run the benchmarks through scripts/bench"
            )
        cli = os.environ.get("CONTAINERLEASE_BENCH_DOCKER_CLI") or shutil.which("docker")
        if cli is None and Path("/usr/local/bin/docker").is_file():
            cli = "/usr/local/bin/docker"
        return cls(
            docker_url=os.environ["CONTAINERLEASE_DOCKER_URL"],
            redis_url=os.environ["CONTAINERLEASE_REDIS_URL"],
            image=os.environ.get("CONTAINERLEASE_TEST_IMAGE", "containerlease-test:busybox"),
            quick=quick,
            base=f"bench{secrets.token_hex(3)}",
            docker_cli=cli,
            store_redis_url=os.environ.get("CONTAINERLEASE_BENCH_STORE_REDIS_URL") or None,
            interval=interval,
            results=results,
        )


def new_prefix(env: BenchEnv, suffix: str) -> str:
    """A key prefix (= container instance label) for one phase; :func:`cleanup` removes it."""
    prefix = f"{env.base}-{suffix}"
    _PREFIXES.add(prefix)
    return prefix


def make_settings(
    env: BenchEnv,
    prefix: str,
    *,
    interval: float | None = None,
    redis_url: str | None = None,
    images: dict[str, ImageSpec] | None = None,
) -> Settings:
    """Settings for one phase: the offline busybox image, generous quotas, no warnings."""
    catalog = {
        IMAGE_NAME: ImageSpec(
            ref=env.image,
            hourly_rate=Decimal("0.36"),
            description="busybox (offline benchmark image)",
            memory=MEMORY,
            cpus=CPUS,
            pids=PIDS,
        )
    }
    catalog.update(images or {})
    return Settings(
        redis=RedisSettings(url=redis_url or env.redis_url, key_prefix=prefix),
        docker=DockerSettings(url=env.docker_url, timeout=120.0),
        images=catalog,
        limits=LimitSettings(
            min_duration=timedelta(seconds=1),
            default_duration=timedelta(hours=1),
            max_duration=timedelta(hours=8),
            max_lifetime=timedelta(hours=24),
            max_leases_per_user=100_000,
            max_leases_total=100_000,
        ),
        reaper=ReaperSettings(
            interval=timedelta(seconds=interval if interval is not None else env.interval),
            warnings=[],
        ),
    )


def open_service(settings: Settings, user: str) -> LeaseService:
    """A LeaseService for ``user`` (not an admin), as the CLI and the TUI open one."""
    return LeaseService(
        settings,
        LeaseStore.from_settings(settings),
        Engine(settings.docker),
        user=user,
        admin=False,
    )


def container_config(image: str, labels: dict[str, str], cmd: Sequence[str]) -> dict[str, Any]:
    """The create body :meth:`Engine.create` sends for a catalog image, for the references."""
    return {
        "Image": image,
        "Env": [],
        "Labels": dict(labels),
        "Tty": False,
        "Cmd": list(cmd),
        "HostConfig": {
            "Memory": MEMORY,
            "MemorySwap": MEMORY,
            "NanoCpus": round(CPUS * 1e9),
            "PidsLimit": PIDS,
            "Init": True,
            "RestartPolicy": {"Name": "no"},
            "CapDrop": ["ALL"],
            "CapAdd": list(CAPS),
            "SecurityOpt": ["no-new-privileges"],
            "Privileged": False,
            "ReadonlyRootfs": False,
            "Binds": [],
            "NetworkMode": "default",
        },
    }


def cli_run_args(image: str, name: str, labels: dict[str, str], cmd: Sequence[str]) -> list[str]:
    """``docker run -d`` arguments equivalent to :func:`container_config`."""
    args = ["run", "-d", "--name", name]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    args += [
        "--memory",
        str(MEMORY),
        "--memory-swap",
        str(MEMORY),
        "--cpus",
        str(CPUS),
        "--pids-limit",
        str(PIDS),
        "--init",
        "--restart",
        "no",
        "--cap-drop",
        "ALL",
    ]
    for cap in CAPS:
        args += ["--cap-add", cap]
    args += ["--security-opt", "no-new-privileges", "--network", "default", image, *cmd]
    return args


KEEPALIVE = list(KEEPALIVE_CMD)


# --- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """n, p50, p95, p99, mean, min and max of a sample (seconds in, seconds out)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None}
    return {
        "n": len(data),
        "p50": percentile(data, 50),
        "p95": percentile(data, 95),
        "p99": percentile(data, 99),
        "mean": sum(data) / len(data),
        "min": min(data),
        "max": max(data),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def goal(name: str, target: str, value: float | None, met: bool | None, why: str = "") -> dict:
    """One goal's verdict, as the JSON and the report show it."""
    return {"goal": name, "target": target, "value": value, "met": met, "why": why}


# --- machine info --------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{'+dirty' if dirty else ''}"


async def redis_version(url: str) -> str | None:
    """``redis_version`` from ``INFO server``."""
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    try:
        info = await client.info("server")
        return str(info.get("redis_version"))
    except Exception:
        return None
    finally:
        await client.aclose()


async def machine_info(env: BenchEnv) -> dict[str, Any]:
    """The machine, engine, Redis and software a result was measured with."""
    docker = aiodocker.Docker(url=env.docker_url)
    try:
        version = await docker.version()
        info = await docker.system.info()
    finally:
        await docker.close()
    packages = {}
    for name in ("textual", "aiodocker", "redis", "pydantic", "aiohttp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    cli_version = None
    if env.docker_cli:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = await asyncio.to_thread(
                subprocess.run,
                [env.docker_cli, "--version"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            cli_version = done.stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_bytes": _mem_total(),
        "load_avg_at_start": list(os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "engine_version": version.get("Version"),
        "engine_api": version.get("ApiVersion"),
        "engine_storage_driver": info.get("Driver"),
        "engine_cgroup": info.get("CgroupVersion"),
        "redis_version": await redis_version(env.redis_url),
        "docker_cli": cli_version,
        "packages": packages,
        "commit": await asyncio.to_thread(_git_commit),
        "quick": env.quick,
    }


# --- Docker events: when did a container really go? -----------------------------------------


class ContainerEvents:
    """Follows the engine's container events of one instance label, with the daemon's clock.

    The daemon and this process share the host clock, so ``timeNano`` of a ``destroy`` event
    minus a deadline taken from :func:`time.time` is the lag from deadline to container gone.
    """

    def __init__(self, docker_url: str, instance: str, actions: Sequence[str] = ("destroy",)):
        self._url = docker_url
        self._filters = json.dumps(
            {
                "type": ["container"],
                "event": list(actions),
                "label": [f"{LABEL_INSTANCE}={instance}"],
            }
        )
        self.times: dict[str, float] = {}
        """Container id → epoch seconds of its first matching event."""
        self._changed = asyncio.Event()
        self._docker: aiodocker.Docker | None = None
        self._task: asyncio.Task[None] | None = None
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> ContainerEvents:
        self._docker = aiodocker.Docker(url=self._url)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, connect=30)
        self._response = await _compat.raw_get(
            self._docker, "events", params={"filters": self._filters}, timeout=timeout
        )
        self._task = asyncio.create_task(self._read(self._response))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._response is not None:
            self._response.close()
        if self._docker is not None:
            await self._docker.close()

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        while line := await response.content.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            cid = str(event.get("id") or event.get("Actor", {}).get("ID", ""))
            if cid and cid not in self.times:
                self.times[cid] = int(event.get("timeNano", 0)) / 1e9 or float(event["time"])
                self._changed.set()

    async def wait(self, ids: Iterable[str], within: float) -> bool:
        """Wait until every container in ``ids`` has had its event; False after ``within`` s."""
        wanted = set(ids)
        end = time.monotonic() + within
        while not wanted <= self.times.keys():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 1.0)):
                    await self._changed.wait()
        return True


async def sleep_until(epoch: float) -> None:
    """Sleep until wall-clock time ``epoch`` (seconds)."""
    delay = epoch - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


# --- containers and keys ---------------------------------------------------------------------


async def remove_instance(docker: aiodocker.Docker, instance: str, parallel: int = 16) -> int:
    """Force-remove every container labelled with this instance; how many there were."""
    found = await docker.containers.list(
        all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}"]}
    )
    sem = asyncio.Semaphore(parallel)

    async def one(cid: str) -> None:
        async with sem:
            with contextlib.suppress(aiodocker.DockerError):
                await docker.containers.container(cid).delete(force=True, v=True)

    await asyncio.gather(*(one(c.id) for c in found))
    return len(found)


async def delete_keys(client: aioredis.Redis, prefix: str) -> int:
    """Delete every key of ``prefix`` (a SCAN, batched UNLINKs); how many."""
    count = 0
    batch: list[str] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            count += await client.unlink(*batch)
            batch.clear()
    if batch:
        count += await client.unlink(*batch)
    return count


async def cleanup(env: BenchEnv, prefixes: Iterable[str] | None = None) -> None:
    """Remove the containers and keys of the given (default: all registered) prefixes."""
    chosen = sorted(set(prefixes) if prefixes is not None else _PREFIXES)
    if not chosen:
        return
    docker = aiodocker.Docker(url=env.docker_url)
    client = aioredis.Redis.from_url(env.redis_url, decode_responses=True)
    try:
        for prefix in chosen:
            with contextlib.suppress(Exception):
                await remove_instance(docker, prefix)
            with contextlib.suppress(Exception):
                await delete_keys(client, prefix)
    finally:
        await docker.close()
        await client.aclose()


# --- a private redis-server (store scaling) -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def private_redis(workdir: Path) -> AsyncIterator[str]:
    """A throwaway redis-server on loopback (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = _free_port()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--loglevel",
        "warning",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = aioredis.Redis.from_url(url, socket_timeout=2)
        try:
            for _ in range(100):
                with contextlib.suppress(Exception):
                    if await client.ping():
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the private redis-server did not answer")
        finally:
            await client.aclose()
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --- results -------------------------------------------------------------------------------


@dataclass
class Result:
    """One benchmark group's JSON document."""

    benchmark: str
    machine: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> Path:
        """Write ``folder/<benchmark>.json`` atomically; returns the path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.benchmark}.json"
        tmp = path.with_suffix(".json.tmp")
        doc = {
            "benchmark": self.benchmark,
            "machine": self.machine,
            "params": self.params,
            "results": self.results,
            "ratios": self.ratios,
            "goals": self.goals,
            "notes": self.notes,
        }
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def rounded(value: float | None, digits: int = 6) -> float | None:
    """Round for the JSON (None and NaN stay None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, digits)
