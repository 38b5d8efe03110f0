"""Footprint: what idle apps cost on a shared box, how fast the app starts and the CLI returns.

Two groups, both measured side by side with a reference in the same run:

* **footprint** — N idle apps (1, 5 and 10) over 5, 50 and 500 leases, each the real
  ``containerlease --no-reaper`` on a pseudo-terminal of its own (160x50), against the same
  number of bare Textual apps (:mod:`benchmarks.footprint_bare`: a ``DataTable`` of the same
  rows and a 1 s clock). Per app: CPU (``/proc/PID/stat``) and resident memory over an idle
  window, bytes written to the terminal per second; for the whole set: Redis commands per
  second (``INFO commandstats`` before and after) and which commands they were. Start-up:
  launch → the first lease row on the terminal.
* **cli** — wall time of ``containerlease --help`` and ``containerlease ls --json`` against
  ``python -c pass``, ``docker ps`` and ``redis-cli ping``, interleaved in shuffled order.

``CONTAINERLEASE_BENCH_BASELINE_SRC`` may name a checkout of an older commit (e.g. ``git
archive main | tar -x -C DIR``): it is then measured too, as ``before``, in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks.common import (
    ROOT,
    BenchEnv,
    Result,
    goal,
    log,
    make_settings,
    new_prefix,
    open_service,
    ratio,
    rounded,
    summarize,
)
from benchmarks.store_scaling import _insert
from containerlease_tui.display import format_cost
from containerlease_tui.models import Lease, LeaseStatus

SIZE = (160, 50)
LEASES = (5, 50, 500)
APPS = (1, 5, 10)
APPS_LEASES = 50
"""The lease count the 5- and 10-app sets run with."""
NAME = re.compile(rb"fpl\d{4}")
ANSI = re.compile(
    rb"\x1b\[[0-9;?<>=$]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]"
)
TICKS = os.sysconf("SC_CLK_TCK")


def _records(count: int, now: datetime) -> list[Lease]:
    rng = random.Random(19)
    return [
        Lease(
            id=f"f{i:07d}",
            name=f"fpl{i:04d}",
            owner="bench" if i % 3 == 0 else f"user{i % 17}",
            image="busybox",
            image_ref="containerlease-test:busybox",
            status=LeaseStatus.RUNNING,
            docker_id=f"{i:064x}",
            created_at=now - timedelta(seconds=rng.randint(60, 3600)),
            expires_at=now + timedelta(seconds=rng.randint(2 * 3600, 8 * 3600)),
            hourly_rate=Decimal("0.36"),
            host="bench",
        )
        for i in range(count)
    ]


def _bare_rows(leases: list[Lease], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": lease.id,
            "name": f"{lease.name} {lease.id}",
            "expires": lease.expires_at.timestamp(),
            "cost": f"{format_cost(lease.accrued_cost(now))}/{format_cost(lease.estimated_cost)}",
            "owner": lease.owner,
            "container": lease.short_docker_id or "—",
        }
        for lease in leases
    ]


# --- a process on a pseudo-terminal ----------------------------------------------------------


@dataclass
class Term:
    """One app on a pty of its own: what it wrote, when the first lease row showed, its CPU."""

    argv: list[str]
    env: dict[str, str]
    cwd: str = str(ROOT)
    started: float = 0.0
    first_row: float | None = None
    first_row_cpu: float | None = None
    """CPU seconds the app had used when its first row showed (robust on a loaded box)."""
    written: int = 0
    _head: bytearray = field(default_factory=bytearray)
    _proc: subprocess.Popen[bytes] | None = None
    _fd: int = -1
    _seen: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.started = time.perf_counter()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._fd = master
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._seen.set()  # gone: nobody waits for a row that never comes
            return
        self.written += len(data)
        if self.first_row is None:
            self._head += data
            if NAME.search(ANSI.sub(b"", bytes(self._head))):
                self.first_row = time.perf_counter() - self.started
                with contextlib.suppress(OSError, ValueError, IndexError):
                    self.first_row_cpu = self.cpu()
                self._head.clear()
                self._seen.set()

    async def wait_first_row(self, within: float) -> float | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._seen.wait()
        return self.first_row

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    async def stop(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self._proc.wait), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self._proc.wait)
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def _app_env(env: BenchEnv, prefix: str, config: Path, src: str | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERLEASE_")}
    out.update(
        {
            "TERM": "xterm-256color",
            "COLUMNS": str(SIZE[0]),
            "LINES": str(SIZE[1]),
            "CONTAINERLEASE_CONFIG": str(config),
            "CONTAINERLEASE_REDIS_URL": env.redis_url,
            "CONTAINERLEASE_REDIS_KEY_PREFIX": prefix,
            "CONTAINERLEASE_DOCKER_URL": env.docker_url,
            "CONTAINERLEASE_REAPER_GUARDIAN": "false",
        }
    )
    out.pop("TEXTUAL", None)
    if src:
        out["PYTHONPATH"] = src
    return out


async def _commandstats(client: aioredis.Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {
        key.removeprefix("cmdstat_"): int(value["calls"])
        for key, value in info.items()
        if isinstance(value, dict)
    }


async def _idle_set(
    env: BenchEnv,
    variant: str,
    apps: int,
    prefix: str,
    config: Path,
    rows_file: Path,
    window: float,
) -> dict[str, Any]:
    """Start ``apps`` copies of one variant, wait for their first rows, measure an idle window."""
    src = os.environ.get("CONTAINERLEASE_BENCH_BASELINE_SRC") if variant == "before" else None
    if variant == "bare":
        argv = [sys.executable, "-m", "benchmarks.footprint_bare", str(rows_file)]
    else:
        argv = [sys.executable, "-m", "containerlease_tui", "--no-reaper"]
    # ``-m`` puts the working directory first on sys.path: the baseline runs from its own.
    terms = [Term(argv, _app_env(env, prefix, config, src), src or str(ROOT)) for _ in range(apps)]
    client = aioredis.Redis.from_url(env.redis_url, decode_responses=True)
    try:
        for term in terms:
            term.start()
        starts = [await term.wait_first_row(60) for term in terms]
        if any(s is None for s in starts) or not all(t.alive() for t in terms):
            raise RuntimeError(f"{variant}: an app did not show its first lease row")
        await asyncio.sleep(3.0)  # let the first loads, health checks and image lookups settle
        cpu0 = [t.cpu() for t in terms]
        out0 = [t.written for t in terms]
        stats0 = await _commandstats(client)
        t0 = time.perf_counter()
        await asyncio.sleep(window)
        elapsed = time.perf_counter() - t0
        stats1 = await _commandstats(client)
        cpu1 = [t.cpu() for t in terms]
        out1 = [t.written for t in terms]
        rss = [t.rss() for t in terms]
    finally:
        await client.aclose()
        for term in terms:
            await term.stop()
    calls = {k: v - stats0.get(k, 0) for k, v in stats1.items() if v - stats0.get(k, 0) > 0}
    calls["info"] = calls.get("info", 0) - 1  # our own INFO commandstats
    calls = {k: v for k, v in calls.items() if v > 0}
    cpu = [(b - a) / elapsed * 100 for a, b in zip(cpu0, cpu1, strict=True)]
    return {
        "apps": apps,
        "window_s": round(elapsed, 2),
        "first_row": summarize([s for s in starts if s is not None]),
        "first_row_cpu": summarize([t.first_row_cpu for t in terms if t.first_row_cpu is not None]),
        "cpu_percent_per_app": rounded(sum(cpu) / len(cpu), 3),
        "cpu_percent_total": rounded(sum(cpu), 3),
        "rss_per_app": round(sum(rss) / len(rss)),
        "bytes_per_s_per_app": rounded(
            sum(b - a for a, b in zip(out0, out1, strict=True)) / len(terms) / elapsed, 1
        ),
        "redis_commands_per_s": rounded(sum(calls.values()) / elapsed, 2),
        "redis_commands": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


def _variants() -> list[str]:
    src = os.environ.get("CONTAINERLEASE_BENCH_BASELINE_SRC")
    return ["ours", "bare", "before"] if src else ["ours", "bare"]


async def run(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """The ``footprint`` group: idle apps and start-up against bare Textual apps."""
    window = 8.0 if env.quick else 30.0
    leases_sizes = LEASES[:2] if env.quick else LEASES
    app_counts = APPS[:2] if env.quick else APPS
    plan = [(1, n) for n in leases_sizes] + [(k, APPS_LEASES) for k in app_counts if k > 1]
    results: dict[str, Any] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cl-footprint-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text("", encoding="utf-8")
        for n in sorted({n for _, n in plan}):
            prefix = new_prefix(env, f"fp{n}")
            service = open_service(make_settings(env, prefix), "bench")
            now = datetime.now(UTC)
            leases = _records(n, now)
            try:
                await _insert(service.store, leases)
            finally:
                await service.close()
            rows_file = Path(tmp) / f"rows{n}.json"
            rows_file.write_text(json.dumps(_bare_rows(leases, now)), encoding="utf-8")
            for apps, size in plan:
                if size != n:
                    continue
                key = f"{apps} apps, {n} leases"
                variants = _variants()
                if apps % 2 == 0:
                    variants.reverse()  # alternate who goes first
                for variant in variants:
                    log(f"footprint: {key}: {variant}")
                    try:
                        found = await _idle_set(
                            env, variant, apps, prefix, config, rows_file, window
                        )
                    except Exception as exc:
                        notes.append(f"{key} {variant} did not run: {exc}")
                        log(f"footprint: {key} {variant} failed: {exc}")
                        continue
                    results.setdefault(key, {})[variant] = found
    ratios: dict[str, Any] = {}
    goals = []
    for key, found in results.items():
        ours, bare = found.get("ours"), found.get("bare")
        if not ours or not bare:
            continue
        ratios[key] = {
            f"ours/bare {what}": rounded(ratio(ours[what], bare[what]), 3)
            for what in (
                "cpu_percent_per_app",
                "rss_per_app",
                "bytes_per_s_per_app",
            )
        }
        for what in ("first_row", "first_row_cpu"):
            ratios[key][f"ours/bare {what} p50"] = rounded(
                ratio(ours[what]["p50"], bare[what]["p50"]), 3
            )
        if "before" in found:
            before = found["before"]
            ratios[key]["ours/before cpu_percent_per_app"] = rounded(
                ratio(ours["cpu_percent_per_app"], before["cpu_percent_per_app"]), 3
            )
            for what in ("first_row", "first_row_cpu", "bytes_per_s_per_app", "rss_per_app"):
                ratios[key][f"ours/before {what}"] = rounded(
                    ratio(
                        ours[what]["p50"] if what.startswith("first") else ours[what],
                        before[what]["p50"] if what.startswith("first") else before[what],
                    ),
                    3,
                )
    for key, target_cpu in (("1 apps, 5 leases", 0.5), ("1 apps, 50 leases", 0.5)):
        ours = results.get(key, {}).get("ours")
        if ours:
            value = ours["cpu_percent_per_app"]
            goals.append(
                goal(
                    f"one idle app, {key.split(', ')[1]}: CPU",
                    f"≤ {target_cpu} % of a core",
                    value,
                    value <= target_cpu,
                    f"{value:.2f} % (bare "
                    f"{results[key].get('bare', {}).get('cpu_percent_per_app')} %), "
                    f"{ours['rss_per_app'] / 2**20:.0f} MiB",
                )
            )
    ours5 = results.get("1 apps, 5 leases", {}).get("ours")
    if ours5:
        mib = ours5["rss_per_app"] / 2**20
        goals.append(
            goal("one idle app, 5 leases: RSS", "≤ 70 MiB", mib, mib <= 70, f"{mib:.1f} MiB")
        )
        first = ours5["first_row"]["p50"]
        used = ours5["first_row_cpu"]["p50"]
        goals.append(
            goal(
                "launch to first lease row",
                "≤ 0.6 s",
                first,
                first <= 0.6,
                f"{first:.2f} s p50 wall, {used:.2f} s CPU",
            )
        )
    many = results.get(f"5 apps, {APPS_LEASES} leases", {}).get("ours")
    if many:
        goals.append(
            goal(
                f"5 apps open, {APPS_LEASES} leases: CPU in all",
                "≤ 3 % of a core",
                many["cpu_percent_total"],
                many["cpu_percent_total"] <= 3,
                f"{many['cpu_percent_total']:.2f} %",
            )
        )
        goals.append(
            goal(
                f"5 apps open, {APPS_LEASES} leases: Redis commands",
                "≤ 5 commands/s",
                many["redis_commands_per_s"],
                many["redis_commands_per_s"] <= 5,
                ", ".join(f"{k} {v}" for k, v in list(many["redis_commands"].items())[:4]),
            )
        )
    out1 = results.get("1 apps, 50 leases", {}).get("ours")
    if out1:
        kib = out1["bytes_per_s_per_app"] / 1024
        goals.append(
            goal("terminal output of an idle app", "≤ 1 KiB/s", kib, kib <= 1, f"{kib:.2f} KiB/s")
        )
    return Result(
        benchmark="footprint",
        machine=machine,
        params={
            "terminal": f"{SIZE[0]}x{SIZE[1]}",
            "window_s": window,
            "plan": [f"{a} apps, {n} leases" for a, n in plan],
            "variants": _variants(),
            "app": "containerlease --no-reaper on a pty (guardian off)",
            "reference": "benchmarks/footprint_bare.py: DataTable of the same rows + 1 s clock",
        },
        results=results,
        ratios=ratios,
        goals=goals,
        notes=notes,
    )


# --- the cli group ---------------------------------------------------------------------------


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system, from ``wait4``) and the exit code of one run.

    CPU time is the figure a loaded shared box does not distort much: wall time there is
    mostly waiting for a core."""
    cwd = env.get("PYTHONPATH") or str(ROOT)  # ``-m`` looks in the working directory first
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


async def run_cli(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """The ``cli`` group: each command against ``python -c pass``, ``docker ps``, ``redis-cli``."""
    reps = 5 if env.quick else 20
    prefix = new_prefix(env, "fpcli")
    service = open_service(make_settings(env, prefix), "bench")
    try:
        await _insert(service.store, _records(APPS_LEASES, datetime.now(UTC)))
    finally:
        await service.close()
    with tempfile.TemporaryDirectory(prefix="cl-footprint-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text("", encoding="utf-8")
        app_env = _app_env(env, prefix, config)
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], app_env),
            "containerlease --help": (
                [sys.executable, "-m", "containerlease_tui", "--help"],
                app_env,
            ),
            "containerlease ls --json": (
                [sys.executable, "-m", "containerlease_tui", "ls", "--json", "--all"],
                app_env,
            ),
        }
        src = os.environ.get("CONTAINERLEASE_BENCH_BASELINE_SRC")
        if src:
            old = _app_env(env, prefix, config, src)
            commands["before: containerlease --help"] = (
                [sys.executable, "-m", "containerlease_tui", "--help"],
                old,
            )
            commands["before: containerlease ls --json"] = (
                [sys.executable, "-m", "containerlease_tui", "ls", "--json", "--all"],
                old,
            )
        if env.docker_cli:
            docker_env = dict(os.environ, DOCKER_HOST=env.docker_url)
            commands["docker ps"] = ([env.docker_cli, "ps", "-q"], docker_env)
        redis_cli = shutil.which("redis-cli")
        if redis_cli:
            commands["redis-cli ping"] = (
                [redis_cli, "-u", env.redis_url, "ping"],
                dict(os.environ),
            )
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        codes: dict[str, set[int]] = {name: set() for name in commands}
        rng = random.Random(5)
        for name in commands:  # one warm-up each (page cache, .pyc)
            await asyncio.to_thread(_timed, *commands[name])
        for _ in range(reps):
            order = list(commands)
            rng.shuffle(order)
            for name in order:
                seconds, used, code = await asyncio.to_thread(_timed, *commands[name])
                samples[name].append(seconds)
                cpu[name].append(used)
                codes[name].add(code)
    results = {
        name: {**summarize(values), "cpu": summarize(cpu[name]), "exit_codes": sorted(codes[name])}
        for name, values in samples.items()
    }
    ratios: dict[str, Any] = {}
    for name in commands:
        if not name.startswith(("containerlease", "before")):
            continue
        row = {}
        for ref in ("python -c pass", "docker ps", "redis-cli ping"):
            if ref in results:
                row[f"÷ {ref} p50"] = rounded(ratio(results[name]["p50"], results[ref]["p50"]), 3)
                row[f"cpu ÷ {ref} p50"] = rounded(
                    ratio(results[name]["cpu"]["p50"], results[ref]["cpu"]["p50"]), 3
                )
        before = f"before: {name}"
        if before in results:
            row["÷ before p50"] = rounded(ratio(results[name]["p50"], results[before]["p50"]), 3)
            row["cpu ÷ before p50"] = rounded(
                ratio(results[name]["cpu"]["p50"], results[before]["cpu"]["p50"]), 3
            )
        ratios[name] = row
    goals = []
    for name, target in (("containerlease ls --json", 0.25), ("containerlease --help", 0.15)):
        value = results[name]["p50"]
        used = results[name]["cpu"]["p50"]
        goals.append(
            goal(
                f"`{name}` wall time",
                f"≤ {target} s",
                value,
                value <= target,
                f"{value * 1000:.0f} ms p50, {used * 1000:.0f} ms CPU (python -c pass "
                f"{results['python -c pass']['p50'] * 1000:.0f} ms, "
                f"{results['python -c pass']['cpu']['p50'] * 1000:.0f} ms CPU)",
            )
        )
    return Result(
        benchmark="cli",
        machine=machine,
        params={"reps": reps, "leases": APPS_LEASES, "order": "shuffled, interleaved"},
        results=results,
        ratios=ratios,
        goals=goals,
    )
