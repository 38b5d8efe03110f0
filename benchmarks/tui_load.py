"""TUI under load, headless (Textual's Pilot), against bare Textual widgets fed the same data.

Every case runs in a fresh Python process (``python -m benchmarks.tui_load CASE``), so resident
memory and caches of one case never leak into the next. The terminal is 160x50 in every case.

* **table** — render time of the lease table with 1,000 leases: the real app
  (``create_app`` with an open :class:`LeaseService`, leases read from Redis), timing
  ``LeasesPane.set_leases`` from an empty table to a repainted screen, and the once-a-second
  countdown ``tick``; reference: a bare ``DataTable`` with the same seven columns and the same
  1,000 rows as plain strings (``add_rows``; ``update_cell`` for the two ticking columns).
* **keys** — key-press-to-repaint latency while a container prints ~5,000 lines/s into the log
  pane: the real app follows the container (``l``), then arrow keys move the lease table's
  cursor; latency = key event sent by the driver → first repaint showing the moved cursor.
  Reference: a bare ``DataTable`` + ``Log`` app fed from an identical container through bare
  aiodocker, batched every 50 ms like the log pane.
* **memory** — resident memory while 1,000,000 log lines stream into the log pane (a container
  prints them as fast as it can), sampled at every 100,000 lines; reference: a bare
  ``Log(max_lines=10_000)`` fed the same way.

A "repaint" is Textual's compositor update plus the terminal bytes it would write: the headless
driver skips writing them, so the hook renders them itself (and throws them away).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiodocker
from textual import events
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable, Log

from benchmarks.common import (
    ROOT,
    BenchEnv,
    Result,
    container_config,
    goal,
    log,
    make_settings,
    new_prefix,
    open_service,
    ratio,
    rounded,
    summarize,
)
from benchmarks.store_scaling import _insert, _records
from containerlease_tui.config import ImageSpec, Settings
from containerlease_tui.engine import LABEL_INSTANCE
from containerlease_tui.leases import LeaseService, ProvisionRequest
from containerlease_tui.models import Lease

SIZE = (160, 50)
TABLE_LEASES = 1000
LOG_LINES = 1_000_000
KEEP_LINES = 10_000
BATCH_SECONDS = 0.05
FILLER_LEASES = 30
MEMORY_GOAL = 0.10
"""RSS may grow at most this much between the 100,000th line and the last one."""
CASES = (
    "table-ours",
    "table-bare",
    "keys-ours",
    "keys-bare",
    "keys-ours-nogc",
    "memory-ours",
    "memory-bare",
)

# ~5,000 lines/s: 525 lines, then 0.1 s of sleep (the awk print itself takes a few ms).
SPAM_CMD = [
    "/bin/sh",
    "-c",
    "exec awk 'BEGIN { n = 0; while (1) { for (i = 0; i < 525; i++) "
    'printf "%08d GET /api/v1/leases/abc%04d 200 1.2ms user=bench some padding text\\n", '
    'n++, i; fflush(); system("usleep 100000") } }\'',
]


def _flood_cmd(lines: int) -> list[str]:
    """Wait for /tmp/go (so the follower is attached first), then print ``lines`` lines."""
    return [
        "/bin/sh",
        "-c",
        "while [ ! -e /tmp/go ]; do usleep 50000; done; "
        f"awk 'BEGIN {{ for (n = 0; n < {lines}; n++) "
        'printf "%08d GET /api/v1/leases/abc 200 1.2ms user=bench some padding text\\n", n '
        "}'; while :; do sleep 3600; done",
    ]


def rss_bytes() -> int:
    """This process's resident set size (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --- repaint hook ----------------------------------------------------------------------------


class Repaints:
    """Wraps ``app._display``: renders the terminal bytes too, and notes when each repaint ended."""

    def __init__(self, app: App[Any], probe: Callable[[], object] | None = None) -> None:
        self.app = app
        self.probe = probe
        self.seen: list[tuple[float, object]] = []
        self.changed = asyncio.Event()
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            self.seen.append((time.perf_counter(), self.probe() if self.probe else None))
            if len(self.seen) > 10_000:
                del self.seen[:5_000]
            self.changed.set()

        app._display = display  # type: ignore[method-assign]

    async def first_after(self, t0: float, want: object, within: float = 5.0) -> float | None:
        """Seconds from ``t0`` to the first repaint after it whose probe equals ``want``."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            hits = [at for at, value in self.seen if at >= t0 and value == want]
            if hits:
                return hits[0] - t0
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self.changed.wait()
        return None


async def settle_render(pilot: Pilot[Any]) -> None:
    """Let every queued message be handled, then repaint what changed (synchronously)."""
    await pilot._wait_for_screen()
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


async def wait_until(condition: Callable[[], object], within: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; raise after ``within`` seconds."""
    end = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):
            if condition():
                return
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.05)


# --- shared setup --------------------------------------------------------------------------


def _settings(env: BenchEnv, prefix: str, lines: int) -> Settings:
    extra = {
        "spam": ImageSpec(
            ref=env.image, hourly_rate=Decimal("0.36"), cmd=SPAM_CMD, memory=64 * 1024**2
        ),
        "flood": ImageSpec(
            ref=env.image, hourly_rate=Decimal("0.36"), cmd=_flood_cmd(lines), memory=64 * 1024**2
        ),
    }
    return make_settings(env, prefix, images=extra)


async def _fill(service: LeaseService, count: int) -> list[Lease]:
    """``count`` running lease records (no containers) written straight into the store."""
    leases = _records(0, count, datetime.now(UTC), random.Random(7))
    await _insert(service.store, leases)
    return leases


def _counting(service: LeaseService) -> list[int]:
    """Count the lines ``service.logs`` hands to the log pane; returns the live counter."""
    counter = [0]
    original = service.logs

    async def logs(lease: Lease, *, follow: bool, tail: int | str = "all") -> AsyncIterator[str]:
        async for line in original(lease, follow=follow, tail=tail):
            counter[0] += 1
            yield line

    service.logs = logs  # type: ignore[method-assign]
    return counter


class _BareLogFeeder:
    """Bare aiodocker log following into a Textual ``Log``, batched like the log pane."""

    def __init__(self, container: aiodocker.docker.DockerContainer, view: Log) -> None:
        self.container = container
        self.view = view
        self.count = 0
        self.pending: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._flush())]

    async def _read(self) -> None:
        rest = ""
        stream = self.container.log(stdout=True, stderr=True, follow=True)
        async for chunk in stream:
            text = rest + chunk
            lines = text.split("\n")
            rest = lines.pop()
            self.count += len(lines)
            self.pending.extend(lines)
            if len(self.pending) > KEEP_LINES:
                del self.pending[:-KEEP_LINES]

    async def _flush(self) -> None:
        while True:
            await asyncio.sleep(BATCH_SECONDS)
            if self.pending:
                batch, self.pending = self.pending, []
                self.view.write_lines(batch)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _bare_container(
    docker: aiodocker.Docker, env: BenchEnv, prefix: str, cmd: list[str]
) -> aiodocker.docker.DockerContainer:
    config = container_config(env.image, {LABEL_INSTANCE: prefix}, cmd)
    container = await docker.containers.create(config, name=f"{prefix}-bare")
    await container.start()
    return container


async def _trigger(container: aiodocker.docker.DockerContainer) -> None:
    """``touch /tmp/go`` in the container: the flood starts."""
    execution = await container.exec(["touch", "/tmp/go"])
    await execution.start(detach=True)


def _plain_rows(leases: Iterable[Lease], now: datetime) -> list[tuple[str, ...]]:
    return [
        (
            f"{lease.name} {lease.id}",
            lease.status.value,
            f"{int(lease.seconds_left(now)) // 60}m",
            f"{lease.accrued_cost(now)}/{lease.estimated_cost}",
            lease.image,
            lease.owner,
            lease.short_docker_id or "—",
        )
        for lease in leases
    ]


COLUMNS = ("Lease", "Status", "Time left", "Cost now/est.", "Image", "Owner", "Container")


class BareTableApp(App[None]):
    """The reference: a DataTable alone (and, for the log cases, a Log under it)."""

    CSS = "DataTable { height: 1fr; } Log { height: 2fr; }"

    def __init__(self, with_log: bool) -> None:
        super().__init__()
        self.with_log = with_log

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)
        if self.with_log:
            yield Log(max_lines=KEEP_LINES)


# --- cases -----------------------------------------------------------------------------------


async def case_table(env: BenchEnv, prefix: str, bare: bool, reps: int) -> dict[str, Any]:
    """Full render of 1,000 leases, and the countdown tick, in the app or a bare DataTable."""
    settings = make_settings(env, prefix)
    service = open_service(settings, "bench-tui")
    full: list[float] = []
    tick: list[float] = []
    try:
        leases = await _fill(service, TABLE_LEASES)
        now = datetime.now(UTC)
        if bare:
            app: App[Any] = BareTableApp(with_log=False)
        else:
            from containerlease_tui.tui import create_app

            app = create_app(settings, service=service, reaper=False)
        async with app.run_test(size=SIZE) as pilot:
            Repaints(app)
            if bare:
                table = app.query_one(DataTable)
                for label in COLUMNS:
                    table.add_column(label, key=label)
                rows = _plain_rows(leases, now)
                for rep in range(reps):
                    table.clear()
                    await settle_render(pilot)
                    t0 = time.perf_counter()
                    for lease, row in zip(leases, rows, strict=True):
                        table.add_row(*row, key=lease.id)
                    await settle_render(pilot)
                    full.append(time.perf_counter() - t0)
                    later = now + timedelta(seconds=rep + 1)
                    t0 = time.perf_counter()
                    for lease in leases:
                        table.update_cell(
                            lease.id, "Time left", f"{int(lease.seconds_left(later)) // 60}m"
                        )
                        table.update_cell(
                            lease.id,
                            "Cost now/est.",
                            f"{lease.accrued_cost(later)}/{lease.estimated_cost}",
                        )
                    await settle_render(pilot)
                    tick.append(time.perf_counter() - t0)
            else:
                pane = app.main.leases  # type: ignore[attr-defined]
                await wait_until(
                    lambda: pane.table.row_count == TABLE_LEASES, 30, "the leases to load"
                )
                loaded = list(pane.leases.values())
                for rep in range(reps):
                    pane.set_leases([], now)
                    await settle_render(pilot)
                    t0 = time.perf_counter()
                    pane.set_leases(loaded, now)
                    await settle_render(pilot)
                    full.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    pane.tick(now + timedelta(seconds=rep + 1))
                    await settle_render(pilot)
                    tick.append(time.perf_counter() - t0)
                if pane.table.row_count != TABLE_LEASES:
                    raise RuntimeError(f"the table shows {pane.table.row_count} rows")
    finally:
        await service.close()
    return {
        "full_render": summarize(full),
        "tick": summarize(tick),
        "rows": TABLE_LEASES,
        "raw": {"full_render": full, "tick": tick},
    }


async def _press_loop(
    app: App[Any], table: DataTable[Any], repaints: Repaints, presses: int
) -> tuple[list[float], int]:
    """Arrow keys up and down the table; latency of each to the repaint that shows it."""
    rng = random.Random(1)
    latencies: list[float] = []
    lost = 0
    direction = 1
    assert app._driver is not None
    for _ in range(presses):
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


async def case_keys(env: BenchEnv, prefix: str, bare: bool, presses: int) -> dict[str, Any]:
    """Arrow-key latency while ~5,000 lines/s stream into the log pane (or a bare Log)."""
    settings = _settings(env, prefix, 0)
    service = open_service(settings, "bench-tui")
    docker = aiodocker.Docker(url=env.docker_url)
    feeder: _BareLogFeeder | None = None
    try:
        leases = await _fill(service, FILLER_LEASES)
        if bare:
            container = await _bare_container(docker, env, prefix, SPAM_CMD)
            app: App[Any] = BareTableApp(with_log=True)
        else:
            spam = await service.provision(ProvisionRequest(image="spam", duration="1h"))
            counter = _counting(service)
            from containerlease_tui.tui import create_app

            app = create_app(settings, service=service, reaper=False)
        async with app.run_test(size=SIZE) as pilot:
            if bare:
                table = app.query_one(DataTable)
                for label in COLUMNS:
                    table.add_column(label, key=label)
                for lease, row in zip(leases, _plain_rows(leases, datetime.now(UTC)), strict=True):
                    table.add_row(*row, key=lease.id)
                table.add_row(*(["spam"] * len(COLUMNS)), key="spam")
                feeder = _BareLogFeeder(container, app.query_one(Log))
                feeder.start()

                def count() -> int:
                    assert feeder is not None
                    return feeder.count
            else:
                pane = app.main.leases  # type: ignore[attr-defined]
                table = pane.table
                await wait_until(lambda: spam.id in pane.leases, 30, "the leases to load")
                await settle_render(pilot)
                table.select_lease(spam.id)
                app.action_logs()  # type: ignore[attr-defined]

                def count() -> int:
                    return counter[0]

            await wait_until(lambda: count() >= 5000, 30, "the log to flow")
            start_count, start = count(), time.perf_counter()
            await asyncio.sleep(2.0)
            rate = (count() - start_count) / (time.perf_counter() - start)
            table.focus()
            table.move_cursor(row=0, animate=False)
            await settle_render(pilot)
            repaints = Repaints(app, probe=lambda: table.cursor_row)
            start_count, start = count(), time.perf_counter()
            latencies, lost = await _press_loop(app, table, repaints, presses)
            rate_during = (count() - start_count) / (time.perf_counter() - start)
    finally:
        if feeder is not None:
            await feeder.stop()
        await service.close()
        await docker.close()
    return {
        "latency": summarize(latencies),
        "raw": {"latency": latencies},
        "lost": lost,
        "lines_per_s_before": round(rate, 1),
        "lines_per_s_during": round(rate_during, 1),
        "presses": presses,
    }


async def case_memory(env: BenchEnv, prefix: str, bare: bool) -> dict[str, Any]:
    """RSS while LOG_LINES lines stream into the log pane (or a bare Log)."""
    lines = 200_000 if env.quick else LOG_LINES
    mark = lines // 10
    settings = _settings(env, prefix, lines)
    service = open_service(settings, "bench-tui")
    docker = aiodocker.Docker(url=env.docker_url)
    feeder: _BareLogFeeder | None = None
    samples: list[tuple[float, int, int]] = []  # (seconds, lines, rss)
    try:
        if bare:
            container = await _bare_container(docker, env, prefix, _flood_cmd(lines))
            app: App[Any] = BareTableApp(with_log=True)
        else:
            flood = await service.provision(ProvisionRequest(image="flood", duration="1h"))
            container = docker.containers.container(flood.docker_id or "")
            counter = _counting(service)
            from containerlease_tui.tui import create_app

            app = create_app(settings, service=service, reaper=False)
        async with app.run_test(size=SIZE) as pilot:
            Repaints(app)
            if bare:
                feeder = _BareLogFeeder(container, app.query_one(Log))
                feeder.start()

                def count() -> int:
                    assert feeder is not None
                    return feeder.count
            else:
                pane = app.main.leases  # type: ignore[attr-defined]
                await wait_until(lambda: flood.id in pane.leases, 30, "the leases to load")
                await settle_render(pilot)
                pane.table.select_lease(flood.id)
                app.action_logs()  # type: ignore[attr-defined]

                def count() -> int:
                    return counter[0]

            await asyncio.sleep(1.0)  # the follower is attached
            gc.collect()
            base_rss = rss_bytes()
            await _trigger(container)
            start = time.perf_counter()
            end = start + (120 if env.quick else 400)
            while count() < lines and time.perf_counter() < end:
                samples.append((time.perf_counter() - start, count(), rss_bytes()))
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - start
            await asyncio.sleep(1.0)
            await settle_render(pilot)
            gc.collect()
            final_rss = rss_bytes()
            received = count()
    finally:
        if feeder is not None:
            await feeder.stop()
        await service.close()
        await docker.close()
    marks = []
    for target in range(mark, lines + 1, mark):
        hit = next((s for s in samples if s[1] >= target), None)
        if hit is not None:
            marks.append({"lines": target, "seconds": round(hit[0], 2), "rss": hit[2]})
    first = marks[0]["rss"] if marks else None
    peak = max((s[2] for s in samples), default=None)
    return {
        "lines": lines,
        "received": received,
        "seconds": round(elapsed, 2),
        "lines_per_s": round(received / elapsed, 1) if elapsed else None,
        "rss_before": base_rss,
        "rss_at_marks": marks,
        "rss_first_mark": first,
        "rss_peak": peak,
        "rss_final": final_rss,
        "growth_after_first_mark": rounded(ratio(final_rss - (first or 0), first), 4),
    }


async def _case(env: BenchEnv, name: str, prefix: str, reps: int) -> dict[str, Any]:
    kind, _, variant = name.partition("-")
    bare = variant == "bare"
    if variant.endswith("nogc"):
        gc.disable()  # a diagnostic: how much of the tail is the cyclic garbage collector
    if kind == "table":
        return await case_table(env, prefix, bare, reps)
    if kind == "keys":
        return await case_keys(env, prefix, bare, reps)
    return await case_memory(env, prefix, bare)


def child_main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.tui_load CASE --prefix P``: one case, JSON on stdout's last line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tui_load")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--reps", type=int, default=10, help="renders or key presses")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    env = BenchEnv.from_environ(quick=args.quick, interval=5.0)
    result = asyncio.run(_case(env, args.case, args.prefix, args.reps))
    print(json.dumps(result))
    return 0


# --- the group (parent side) -----------------------------------------------------------------


async def _spawn(env: BenchEnv, case: str, reps: int, run: int) -> dict[str, Any]:
    prefix = new_prefix(env, f"{case.replace('-', '')}{run}")
    args = [
        sys.executable,
        "-m",
        "benchmarks.tui_load",
        case,
        "--prefix",
        prefix,
        "--reps",
        str(reps),
    ]
    if env.quick:
        args.append("--quick")
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"tui case {case} failed:\n" + "\n".join(tail))
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's runs as one: summaries over the pooled raw samples, rates averaged."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = dict(runs[0])
    raw: dict[str, list[float]] = {}
    for found in runs:
        for key, values in found.get("raw", {}).items():
            raw.setdefault(key, []).extend(values)
    for key, values in raw.items():
        merged[key] = summarize(values)
    merged["raw"] = raw
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in raw:
            values = [found.get(key, 0) for found in runs]
            if key in ("lost", "presses"):
                merged[key] = sum(values)
            elif len(set(values)) > 1:
                merged[key] = round(sum(values) / len(values), 1)
    merged["runs"] = len(runs)
    return merged


async def run(env: BenchEnv, machine: dict[str, Any]) -> Result:
    """Run every TUI case in its own process; returns the ``tui`` result."""
    table_reps = 3 if env.quick else 10
    presses = 10 if env.quick else 30
    # (case, reps or presses per run, runs): ours and bare alternate, so drift hits both alike.
    plan: list[tuple[str, int, int]] = []
    for run in range(2):
        pair = ("ours", "bare") if run % 2 == 0 else ("bare", "ours")
        plan += [(f"table-{variant}", table_reps, run) for variant in pair]
        plan += [(f"keys-{variant}", presses, run) for variant in pair]
    plan += [("keys-ours-nogc", presses, 0), ("memory-ours", 0, 0), ("memory-bare", 0, 0)]
    runs: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for case, reps, run in plan:
        log(f"tui: {case} (run {run + 1})")
        try:
            runs.setdefault(case, []).append(await _spawn(env, case, reps, run))
        except Exception as exc:
            notes.append(f"{case} (run {run + 1}) did not run: {exc}")
            log(f"tui: {case} failed: {exc}")
    results = {case: _pool(found) for case, found in runs.items()}
    ratios: dict[str, Any] = {}
    goals = []
    if "table-ours" in results and "table-bare" in results:
        ours, bare = results["table-ours"], results["table-bare"]
        ratios["table"] = {
            f"ours/bare {what} {q}": rounded(ratio(ours[what][q], bare[what][q]), 4)
            for what in ("full_render", "tick")
            for q in ("p50", "p95")
        }
        value = ours["full_render"]["p50"]
        goals.append(
            goal(
                "lease table: 1,000 leases rendered",
                "reported against a bare DataTable (no fixed target)",
                rounded(ratios["table"]["ours/bare full_render p50"], 4),
                None,
                f"ours {value * 1000:.0f} ms p50" if value is not None else "",
            )
        )
    if "keys-ours" in results and "keys-bare" in results:
        ours, bare = results["keys-ours"], results["keys-bare"]
        ratios["keys"] = {
            f"ours/bare latency {q}": rounded(ratio(ours["latency"][q], bare["latency"][q]), 4)
            for q in ("p50", "p95", "p99")
        }
        nogc = results.get("keys-ours-nogc")
        if nogc:
            ratios["keys"].update(
                {
                    f"ours without gc/bare latency {q}": rounded(
                        ratio(nogc["latency"][q], bare["latency"][q]), 4
                    )
                    for q in ("p50", "p95", "p99")
                }
            )
        p95 = ours["latency"]["p95"]
        goals.append(
            goal(
                "key press to repaint under 5,000 lines/s",
                "reported against a bare DataTable + Log (no fixed target)",
                ratios["keys"]["ours/bare latency p95"],
                None,
                f"ours {p95 * 1000:.0f} ms p95 at {ours['lines_per_s_during']:.0f} lines/s"
                if p95 is not None
                else "",
            )
        )
    if "memory-ours" in results:
        ours = results["memory-ours"]
        bare = results.get("memory-bare", {})
        growth = ours["growth_after_first_mark"]
        ratios["memory"] = {
            "ours growth after first mark": growth,
            "bare growth after first mark": bare.get("growth_after_first_mark"),
            "ours/bare final rss": rounded(ratio(ours["rss_final"], bare.get("rss_final")), 4),
            "ours/bare ingest lines/s": rounded(
                ratio(ours.get("lines_per_s"), bare.get("lines_per_s")), 4
            ),
        }
        goals.append(
            goal(
                f"resident memory flat over {ours['lines']:,} log lines",
                f"growth < {MEMORY_GOAL:.0%} after the first {ours['lines'] // 10:,} lines",
                growth,
                None if growth is None else growth < MEMORY_GOAL and ours["received"] > 0,
                f"{ours['rss_first_mark'] / 2**20:.1f} MiB → {ours['rss_final'] / 2**20:.1f} "
                f"MiB; received {ours['received']:,} lines"
                if ours.get("rss_first_mark")
                else "no samples",
            )
        )
    return Result(
        benchmark="tui",
        machine=machine,
        params={
            "terminal": f"{SIZE[0]}x{SIZE[1]}",
            "table_leases": TABLE_LEASES,
            "log_lines": 200_000 if env.quick else LOG_LINES,
            "spam_rate": "500 lines then 0.1 s sleep (~5,000 lines/s)",
            "batch_seconds": BATCH_SECONDS,
            "keep_lines": KEEP_LINES,
            "repaint": "compositor update + terminal bytes rendered (headless driver)",
        },
        results=results,
        ratios=ratios,
        goals=goals,
        notes=notes,
    )


if __name__ == "__main__":
    raise SystemExit(child_main())
