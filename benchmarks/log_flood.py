"""A followed log under an unbounded flood: lag, key latency, table size (group ``logs``).

Every case runs in a fresh Python process (``python -m benchmarks.log_flood CASE``), headless at
160x50, and the bare widgets run in the same run, so the noisy machine hits both alike.

* **flood** — a container prints numbered lines as fast as it can, forever (busybox ``awk``, some
  200,000 lines/s here), for :data:`FLOOD_SECONDS`. Every :data:`SAMPLE_SECONDS` the benchmark
  asks the engine for the newest line produced (``tail=1`` on a connection of its own) and reads
  the newest line the view shows; **lag** is how long ago the shown line was produced (the
  production times are interpolated between the samples' sequence numbers). Meanwhile arrow keys
  move the lease table's cursor: **key → repaint** as in ``benchmarks/tui_load.py``. Ours: the
  real app following the container (``l``); bare: a ``DataTable`` + ``Log`` fed by bare aiodocker,
  batched every 50 ms (it reads what it can and falls behind).
* **keys** — the same key latency while a container prints ~5,000 lines/s, with 5 and with 500
  leases in the table (ours), and the bare widgets with 500 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiodocker
from textual import events
from textual.app import App
from textual.widgets import DataTable, Log
from textual.worker import WorkerFailed

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
from benchmarks.tui_load import (
    COLUMNS,
    SIZE,
    SPAM_CMD,
    BareTableApp,
    Repaints,
    _bare_container,
    _BareLogFeeder,
    _fill,
    _plain_rows,
    _pool,
    _trigger,
    rss_bytes,
    settle_render,
    wait_until,
)
from containerlease_tui import logflow
from containerlease_tui.config import ImageSpec, Settings
from containerlease_tui.leases import ProvisionRequest

FLOOD_SECONDS = 60.0
SAMPLE_SECONDS = 0.2
LAG_GOAL = 1.0
"""Seconds the shown output may be behind the newest produced (at most, over the run)."""
P95_GOAL = 0.150
"""Key → repaint p95 under the flood."""
TABLE_GOAL = 1.2
"""p95 with 500 leases ÷ p95 with 5 leases, at 5,000 lines/s."""
SMALL_TABLE, BIG_TABLE = 5, 500
CASES = ("flood-ours", "flood-bare", "keys-ours-5", "keys-ours-500", "keys-bare-500")

FLOOD_CMD = [
    "/bin/sh",
    "-c",
    "while [ ! -e /tmp/go ]; do usleep 50000; done; "
    "exec awk 'BEGIN { for (n = 0; ; n++) "
    'printf "%010d GET /api/v1/leases/abc 200 1.2ms user=bench some padding text\\n", n }\'',
]


def _settings(env: BenchEnv, prefix: str) -> Settings:
    extra = {
        "spam": ImageSpec(
            ref=env.image, hourly_rate=Decimal("0.36"), cmd=SPAM_CMD, memory=64 * 1024**2
        ),
        "flood": ImageSpec(
            ref=env.image, hourly_rate=Decimal("0.36"), cmd=FLOOD_CMD, memory=64 * 1024**2
        ),
    }
    return make_settings(env, prefix, images=extra)


def _seq(line: str) -> int | None:
    """The leading sequence number of a benchmark line (None: a marker, or not one)."""
    head = line[:12].partition(" ")[0].strip()
    return int(head) if head.isdigit() else None


def _newest_seq(lines: Any) -> int | None:
    """The sequence number of the newest output line among ``lines`` (markers skipped)."""
    for index in range(len(lines) - 1, max(-1, len(lines) - 50), -1):
        seq = _seq(str(lines[index]))
        if seq is not None:
            return seq
    return None


class LagMeter:
    """Newest produced (engine, ``tail=1``) vs newest shown, every :data:`SAMPLE_SECONDS`."""

    def __init__(self, container: aiodocker.docker.DockerContainer, shown: Callable[[], Any]):
        self.container = container
        self.shown = shown
        self.produced: list[tuple[float, int]] = []  # (time, newest seq produced)
        self.samples: list[tuple[float, int, int | None]] = []  # (time, produced, shown)

    async def newest(self) -> int | None:
        got = await self.container.log(stdout=True, stderr=True, tail=1)
        return _seq(got[-1]) if got else None

    async def run(self, until: float) -> None:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            with contextlib.suppress(Exception):
                produced = await self.newest()
                if produced is not None:
                    at = (t0 + time.perf_counter()) / 2
                    self.produced.append((at, produced))
                    self.samples.append((at, produced, _newest_seq(self.shown())))
            await asyncio.sleep(max(0.0, SAMPLE_SECONDS - (time.perf_counter() - t0)))

    def produced_at(self, seq: int) -> float | None:
        """When line ``seq`` was produced (interpolated between samples)."""
        seqs = [s for _, s in self.produced]
        i = bisect.bisect_left(seqs, seq)
        if i == 0:
            return self.produced[0][0] if self.produced else None
        if i >= len(seqs):
            return self.produced[-1][0]
        (t0, s0), (t1, s1) = self.produced[i - 1], self.produced[i]
        return t0 + (t1 - t0) * (seq - s0) / max(1, s1 - s0)

    def lags(self) -> list[float]:
        out = []
        for at, _produced, shown in self.samples:
            if shown is None:
                continue
            born = self.produced_at(shown)
            if born is not None:
                out.append(max(0.0, at - born))
        return out

    def rate(self) -> float | None:
        if len(self.produced) < 2:
            return None
        (t0, s0), (t1, s1) = self.produced[0], self.produced[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None


async def _press_until(
    app: App[Any], table: DataTable[Any], repaints: Repaints, until: float, presses: int
) -> tuple[list[float], int]:
    """Arrow keys up and down the table until ``until`` (or ``presses`` of them)."""
    rng = random.Random(1)
    latencies: list[float] = []
    lost = 0
    direction = 1
    assert app._driver is not None
    done = 0
    while time.perf_counter() < until and done < presses:
        done += 1
        row = table.cursor_row
        if row + direction < 0 or row + direction >= table.row_count:
            direction = -direction
        want = row + direction
        event = events.Key("down" if direction > 0 else "up", None)
        event.set_sender(app)
        t0 = time.perf_counter()
        app._driver.send_message(event)
        latency = await repaints.first_after(t0, want)
        if latency is None:
            lost += 1
            await wait_until(lambda want=want: table.cursor_row == want, 10, "the cursor")
        else:
            latencies.append(latency)
        await asyncio.sleep(rng.uniform(0.05, 0.15))
    return latencies, lost


async def _open_app(
    env: BenchEnv, prefix: str, bare: bool, image: str, leases: int
) -> tuple[App[Any], Any, aiodocker.docker.DockerContainer, aiodocker.Docker]:
    settings = _settings(env, prefix)
    service = open_service(settings, "bench-logs")
    docker = aiodocker.Docker(url=env.docker_url)
    await _fill(service, leases)
    cmd = FLOOD_CMD if image == "flood" else SPAM_CMD
    if bare:
        container = await _bare_container(docker, env, prefix, cmd)
        app: App[Any] = BareTableApp(with_log=True)
        app._bench = (service, None)  # type: ignore[attr-defined]
    else:
        lease = await service.provision(ProvisionRequest(image=image, duration="1h"))
        container = docker.containers.container(lease.docker_id or "")
        from containerlease_tui.tui import create_app

        app = create_app(settings, service=service, reaper=False)
        app._bench = (service, lease)  # type: ignore[attr-defined]
    return app, service, container, docker


async def case(env: BenchEnv, prefix: str, name: str, presses: int) -> dict[str, Any]:
    kind, _, rest = name.partition("-")
    variant, _, size = rest.partition("-")
    bare = variant == "bare"
    flood = kind == "flood"
    leases = SMALL_TABLE if flood else int(size)
    seconds = (15.0 if env.quick else FLOOD_SECONDS) if flood else 0.0
    app, service, container, docker = await _open_app(
        env, prefix, bare, "flood" if flood else "spam", leases
    )
    feeder: _BareLogFeeder | None = None
    meter: LagMeter | None = None
    measured = False
    try:
        async with app.run_test(size=SIZE) as pilot:
            if bare:
                table = app.query_one(DataTable)
                for label in COLUMNS:
                    table.add_column(label, key=label)
                filler = await service.list(all_users=True)
                for lease, row in zip(filler, _plain_rows(filler, datetime.now(UTC)), strict=True):
                    table.add_row(*row, key=lease.id)
                table.add_row(*(["flood"] * len(COLUMNS)), key="flood")
                view = app.query_one(Log)
                feeder = _BareLogFeeder(container, view)
                feeder.start()

                def shown() -> Any:
                    return view.lines
            else:
                _, lease = app._bench  # type: ignore[attr-defined]
                pane = app.main.leases  # type: ignore[attr-defined]
                table = pane.table
                await wait_until(lambda: lease.id in pane.leases, 60, "the leases to load")
                await settle_render(pilot)
                table.select_lease(lease.id)
                app.action_logs()  # type: ignore[attr-defined]
                logs = app.main.logs  # type: ignore[attr-defined]

                def shown() -> Any:
                    return logs.view.lines

            await asyncio.sleep(1.0)  # the follower is attached
            rss_before = rss_bytes()
            if flood:
                await _trigger(container)
                meter = LagMeter(container, shown)
            else:
                await wait_until(lambda: _newest_seq(shown()) is not None, 30, "the log")
            await asyncio.sleep(1.0)
            table.focus()
            table.move_cursor(row=0, animate=False)
            await settle_render(pilot)
            repaints = Repaints(app, probe=lambda: table.cursor_row)
            start = time.perf_counter()
            until = start + seconds if flood else start + 600
            sampler = asyncio.create_task(meter.run(until)) if meter else None
            latencies, lost = await _press_until(
                app, table, repaints, until, 10**9 if flood else presses
            )
            if sampler is not None:
                await sampler
            elapsed = time.perf_counter() - start
            rss_after = rss_bytes()
            markers = 0
            skipped = jumps = None
            if not bare:
                logs = app.main.logs  # type: ignore[attr-defined]
                markers = sum(str(x).startswith("… ") for x in logs.view.lines)
                skipped, jumps = logs.skipped, logs.jumps
            measured = True
            if feeder is not None:
                await feeder.stop()  # before the app stops: no write may land after it
                feeder = None
                await pilot.pause(0.2)
    except WorkerFailed:
        # The bare Log sizes its lines in a thread worker; one still running when the app
        # shuts down fails with NoActiveAppError. The figures were taken before that.
        if not measured:
            raise
    finally:
        if feeder is not None:
            await feeder.stop()
        await service.close()
        await docker.close()
    out: dict[str, Any] = {
        "latency": summarize(latencies),
        "raw": {"latency": latencies},
        "lost": lost,
        "seconds": round(elapsed, 1),
        "leases": leases,
        "rss_before": rss_before,
        "rss_after": rss_after,
    }
    if not bare:
        out.update({"markers_in_view": markers, "skipped": skipped, "jumps": jumps})
    if meter is not None:
        lags = meter.lags()
        out["lag"] = summarize(lags)
        out["raw"]["lag"] = lags
        out["produced_lines_per_s"] = rounded(meter.rate(), 1)
        out["lag_samples"] = len(lags)
        last = meter.samples[-1] if meter.samples else None
        out["final_behind_lines"] = (
            last[1] - last[2] if last is not None and last[2] is not None else None
        )
    return out


def child_main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.log_flood CASE --prefix P``: one case, JSON on the last line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.log_flood")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    env = BenchEnv.from_environ(quick=args.quick, interval=5.0)
    print(json.dumps(asyncio.run(case(env, args.prefix, args.case, args.presses))))
    return 0


_SPAWNED = [0]


async def _spawn(env: BenchEnv, name: str, presses: int) -> dict[str, Any]:
    _SPAWNED[0] += 1  # a prefix (and container names) of its own for every run and retry
    prefix = new_prefix(env, f"{name.replace('-', '')}{_SPAWNED[0]}")
    args = [sys.executable, "-m", "benchmarks.log_flood", name, "--prefix", prefix]
    args += ["--presses", str(presses)] + (["--quick"] if env.quick else [])
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT)
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"logs case {name} failed:\n" + "\n".join(tail))
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def run(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """Every case in its own process, ours and bare alternating; the ``logs`` result."""
    presses = 20 if env.quick else 60
    # The key cases run twice each, in mirrored order, and their samples are pooled: drift on
    # a shared machine then hits 5 leases, 500 leases and the bare widgets alike.
    keys = ["keys-ours-5", "keys-bare-500", "keys-ours-500"]
    plan = ["flood-ours", "flood-bare", *keys, *reversed(keys)]
    runs: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for name in plan:
        log(f"logs: {name}")
        for attempt in (1, 2):
            try:
                runs.setdefault(name, []).append(await _spawn(env, name, presses))
                break
            except Exception as exc:
                log(f"logs: {name} failed (attempt {attempt}): {exc}")
                if attempt == 2:
                    notes.append(f"{name} did not run: {str(exc).splitlines()[-1]}")
    results: dict[str, Any] = {name: _pool(found) for name, found in runs.items()}
    ratios: dict[str, Any] = {}
    goals = []
    ours, bare = results.get("flood-ours"), results.get("flood-bare")
    if ours:
        lag_max = ours["lag"].get("max")
        goals.append(
            goal(
                "followed log lag under an unbounded flood (max over the run)",
                f"<= {LAG_GOAL:g} s",
                rounded(lag_max, 3),
                None if lag_max is None else lag_max <= LAG_GOAL,
                f"p50 {ms(ours['lag'].get('p50'))} ms over {ours['seconds']:g} s at "
                f"{ours.get('produced_lines_per_s') or 0:,.0f} lines/s produced"
                + (f"; bare Log max {bare['lag'].get('max', 0):.1f} s" if bare else ""),
            )
        )
        p95 = ours["latency"].get("p95")
        ratios["flood"] = {
            f"ours/bare latency {q}": rounded(
                ratio(ours["latency"].get(q), (bare or {}).get("latency", {}).get(q)), 4
            )
            for q in ("p50", "p95", "p99")
        }
        ratios["flood"]["ours/bare lag max"] = rounded(
            ratio(lag_max, (bare or {}).get("lag", {}).get("max")), 4
        )
        goals.append(
            goal(
                "key press to repaint under an unbounded log flood (p95)",
                f"<= {P95_GOAL * 1000:.0f} ms",
                rounded(p95, 4),
                None if p95 is None else p95 <= P95_GOAL,
                f"bare DataTable + Log {ms((bare or {}).get('latency', {}).get('p95'))} ms p95 "
                f"(ours ÷ bare {ratios['flood']['ours/bare latency p95']})",
            )
        )
    small, big = results.get("keys-ours-5"), results.get("keys-ours-500")
    if small and big:
        ratios["table size"] = {
            f"500/5 leases latency {q}": rounded(
                ratio(big["latency"].get(q), small["latency"].get(q)), 4
            )
            for q in ("p50", "p95", "p99")
        }
        keys_bare = results.get("keys-bare-500")
        if keys_bare:
            ratios["table size"].update(
                {
                    f"ours 500/bare 500 latency {q}": rounded(
                        ratio(big["latency"].get(q), keys_bare["latency"].get(q)), 4
                    )
                    for q in ("p50", "p95", "p99")
                }
            )
        value = ratios["table size"]["500/5 leases latency p95"]
        goals.append(
            goal(
                "key → repaint p95 at 5,000 lines/s: 500 leases vs 5",
                f"<= {TABLE_GOAL:g}x",
                value,
                None if value is None else value <= TABLE_GOAL,
                f"{ms(big['latency'].get('p95'))} ms vs {ms(small['latency'].get('p95'))} ms",
            )
        )
    return Result(
        benchmark="logs",
        machine=machine,
        params={
            "terminal": f"{SIZE[0]}x{SIZE[1]}",
            "flood_seconds": 15.0 if env.quick else FLOOD_SECONDS,
            "sample_seconds": SAMPLE_SECONDS,
            "flood": "busybox awk printing numbered lines, unbounded",
            "spam_rate": "525 lines then 0.1 s sleep (~5,000 lines/s)",
            "presses": presses,
            "logflow": {
                "burst": logflow.BURST,
                "batch_seconds": logflow.BATCH_SECONDS,
                "slice_seconds": logflow.SLICE_SECONDS,
                "rest_seconds": logflow.REST_SECONDS,
                "probe_seconds": logflow.PROBE_SECONDS,
                "catch_up_seconds": logflow.CATCH_UP_SECONDS,
                "catch_up_busy_seconds": logflow.CATCH_UP_BUSY_SECONDS,
                "jump_tail": logflow.JUMP_TAIL,
            },
        },
        results=results,
        ratios=ratios,
        goals=goals,
        notes=notes,
    )


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f}"


if __name__ == "__main__":
    raise SystemExit(child_main())
