"""Turns ``benchmarks/results/*.json`` into ``docs/benchmarks.md`` and a console summary.

Everything in the document is generated: rerun ``scripts/bench`` (or
``python -m benchmarks --report-only`` to re-render existing JSON) instead of editing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

Doc = dict[str, Any]
ORDER = ("provision", "reap", "store", "tui", "logs", "footprint", "cli")


def load(folder: Path) -> dict[str, Doc]:
    """Every ``<group>.json`` in ``folder``, by group, in the report's order."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and "benchmark" in doc:
            found[str(doc["benchmark"])] = doc
    return {name: found[name] for name in sorted(found, key=_rank)}


def _rank(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


# --- formatting ------------------------------------------------------------------------------


def ms(seconds: float | None, digits: int = 1) -> str:
    """Seconds as milliseconds (``—`` when missing)."""
    if seconds is None:
        return "—"
    return f"{seconds * 1000:,.{digits}f}"


def sec(seconds: float | None) -> str:
    """Seconds with three decimals."""
    return "—" if seconds is None else f"{seconds:,.3f}"


def x(value: float | None, digits: int = 2) -> str:
    """A ratio: ``1.07x``."""
    if value is None:
        return "—"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.1e}x"
    return f"{value:,.{digits}f}x"


def _pair(ratios: dict[str, Any], high: str, digits: int = 2, stem: str = "") -> str:
    """``p50 / <high>`` ratios from ``ratios[stem + "p50"]`` and ``ratios[stem + high]``."""
    return f"{x(ratios.get(stem + 'p50'), digits)} / {x(ratios.get(stem + high), digits)}"


def mib(value: int | float | None) -> str:
    """Bytes as MiB."""
    return "—" if value is None else f"{value / 2**20:,.1f}"


def verdict(met: bool | None) -> str:
    """A goal's verdict."""
    return {True: "**met**", False: "**missed**", None: "reported"}[met]


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- sections --------------------------------------------------------------------------------


def _machine(docs: dict[str, Doc]) -> str:
    first = next(iter(docs.values()))["machine"]
    dates = sorted({doc["machine"].get("date", "?")[:10] for doc in docs.values()})
    packages = ", ".join(f"{k} {v}" for k, v in first.get("packages", {}).items())
    store = docs.get("store", {}).get("machine", {}).get("store_redis_version")
    rows = [
        (
            "cores",
            f"{first.get('nproc')} ({first.get('usable_cpus')} usable) — {first.get('cpu_model')}",
        ),
        ("memory", f"{mib(first.get('memory_bytes'))} MiB"),
        (
            "Docker engine",
            f"{first.get('engine_version')} (API {first.get('engine_api')}, "
            f"{first.get('engine_storage_driver')}, cgroup v{first.get('engine_cgroup')})",
        ),
        ("Docker CLI", first.get("docker_cli") or "not found"),
        (
            "Redis",
            f"{first.get('redis_version')}"
            + (f" (store scaling on a private redis-server {store})" if store else ""),
        ),
        ("Python", f"{first.get('python')} on Linux {first.get('kernel')}; {packages}"),
        ("run", f"{', '.join(dates)}; commit {first.get('commit')}; quick={first.get('quick')}"),
        ("load at start", ", ".join(f"{v:.2f}" for v in first.get("load_avg_at_start", []))),
    ]
    return table(("", ""), rows)


def _goals(docs: dict[str, Doc]) -> str:
    rows = []
    for name, doc in docs.items():
        for g in doc.get("goals", []):
            value = g.get("value")
            shown = x(value, 3) if isinstance(value, int | float) else "—"
            if "lag p99" in g["goal"] or "(p95)" in g["goal"]:
                shown = f"{ms(value)} ms"
            elif "lag under" in g["goal"]:
                shown = "—" if value is None else f"{value:,.2f} s"
            elif name in ("footprint", "cli") and isinstance(value, int | float):
                shown = f"{value:,.3g}"  # an absolute figure: its unit is in the target
            rows.append(
                (name, g["goal"], g["target"], shown, verdict(g.get("met")), g.get("why", ""))
            )
    return table(("group", "goal", "target", "measured", "verdict", "detail"), rows)


def _provision(doc: Doc) -> str:
    res, rat, par = doc["results"], doc["ratios"], doc["params"]
    methods = par["methods"]
    label = {
        "ours": "ours (`LeaseService.provision`)",
        "bare_aiodocker": "bare aiodocker create+start",
        "docker_cli": "`docker run -d` (CLI)",
    }
    rows = []
    for phase in ("sequential", "concurrent"):
        n = par["sequential_n"] if phase == "sequential" else par["concurrent_n"]
        for method in methods:
            s = res[phase][method]
            if method == "ours":
                vs_bare = rat[phase].get("ours/bare_aiodocker", {})
                vs_cli = rat[phase].get("ours/docker_cli", {})
                r1 = f"{x(vs_bare.get('p50'), 3)} / {x(vs_bare.get('p95'), 3)}"
                r2 = f"{x(vs_cli.get('p50'), 3)} / {x(vs_cli.get('p95'), 3)}" if vs_cli else "—"
            else:
                r1 = r2 = ""
            what = (
                f"{n} sequential x{par.get('sequential_rounds', 1)}"
                if phase == "sequential"
                else f"{n} at once x{par['concurrent_rounds']}"
            )
            rows.append(
                (what, label.get(method, method), s["n"], ms(s["p50"]), ms(s["p95"]), r1, r2)
            )
    share = []
    for phase in ("sequential", "concurrent"):
        engine = res.get("ours_engine_share", {}).get(phase, {}).get("p50")
        own = res.get("ours_own_time", {}).get(phase, {}).get("p50")
        bare = res[phase].get("bare_aiodocker", {}).get("p50")
        if engine is None or own is None:
            continue
        share.append(
            f"- {phase}: inside `Engine.create` + `Engine.start` p50 {ms(engine)} ms; ours' own "
            f"work per request (its total minus those two calls: validation, the image check, "
            f"the quota-checked insert, the name check, three recorded updates) p50 {ms(own)} ms"
            + (f" = {x(own / bare, 3)} bare's p50" if bare else "")
            + "."
        )
    share_text = (
        "\nWhere ours' time goes (per request, measured inside the same requests):\n\n"
        + "\n".join(share)
        + "\n"
        if share
        else ""
    )
    return (
        table(
            (
                "requests",
                "method",
                "n",
                "p50 ms",
                "p95 ms",
                "ours ÷ bare (p50 / p95)",
                "ours ÷ CLI (p50 / p95)",
            ),
            rows,
        )
        + "\n"
        + share_text
    )


def _reap(doc: Doc) -> str:
    res, rat, par = doc["results"], doc["ratios"], doc["params"]
    interval = par["interval_s"]
    rows = []
    for n in map(str, par["sizes"]):
        e = res[n]
        for key, label in (
            ("ours", "ours"),
            ("ours_interval_60s", "ours, interval 60 s"),
            ("fixed_original", f"fixed original ({interval:g} s poll)"),
            ("floor", "floor: bare parallel delete"),
        ):
            if key not in e:
                continue
            s = e[key]["summary"]
            rows.append(
                (
                    n,
                    label,
                    s["n"],
                    ms(s["p50"]),
                    ms(s["p99"]),
                    ms(max((r.get("makespan") or 0) for r in e[key]["rounds"]) or None),
                    f"{e[key].get('throughput_per_s'):,.1f}"
                    if e[key].get("throughput_per_s")
                    else "—",
                )
            )
        o = e["original"]["rounds"][0] if e["original"]["rounds"] else {}
        rows.append(
            (
                n,
                f"original (`KEYS` + `TTL <= 0`, {interval:g} s poll)",
                "—",
                "never",
                "never",
                f"reaped {e['original']['reaped']}/{n} in {o.get('window_s', '?')} s",
                f"{o.get('containers_left', '?')} left",
            )
        )
    ratio_rows = []
    for n in map(str, par["sizes"]):
        r = rat[n]
        ratio_rows.append(
            (
                n,
                _pair(r["ours/floor"], "p99"),
                x(r["throughput ours/floor"], 3),
                _pair(r["ours/fixed_original"], "p99", 3),
                r["original reaped"],
            )
        )
    analytic = res.get("analytic_original_60s", {})
    an_rows = []
    for n in map(str, par["sizes"]):
        a = analytic.get(n, {}).get("fixed_original_60s", {})
        an_rows.append(
            (
                n,
                sec(a.get("expected_p50")),
                sec(a.get("expected_p99")),
                sec(a.get("worst_phase_p99")),
                ms(res[n]["ours"]["summary"]["p99"]),
                x(analytic.get(n, {}).get("ours/fixed_original_60s_expected_p99"), 4),
            )
        )
    return (
        table(
            ("leases", "reaper", "n", "lag p50 ms", "lag p99 ms", "makespan ms", "containers/s"),
            rows,
        )
        + "\n\nRatios (same run):\n\n"
        + table(
            (
                "leases",
                "ours ÷ floor (p50 / p99)",
                "throughput ours ÷ floor",
                "ours ÷ fixed original (p50 / p99)",
                "original reaped",
            ),
            ratio_rows,
        )
        + "\n\nThe original design at its real 60 s interval (analytic: the measured removal "
        "part of the fixed original plus the wait for its next poll; the unfixed original "
        "never reaps at any interval):\n\n"
        + table(
            (
                "leases",
                "fixed original p50 s (mean phase)",
                "p99 s (mean phase)",
                "p99 s (worst phase)",
                "ours p99 ms",
                "ours ÷ fixed original p99",
            ),
            an_rows,
        )
        + "\n"
    )


def _store(doc: Doc) -> str:
    res, rat, par = doc["results"], doc["ratios"], doc["params"]
    sizes = list(map(str, par["sizes"]))
    rows = []
    for size in sizes:
        r, q = res[size], rat[size]
        rows.append(
            (
                f"{int(size):,}",
                ms(r["ours_due"]["p50"], 3),
                ms(r["scan_due"]["p50"], 1),
                x(q["ours_due/scan_due"], 4),
                ms(r["ours_list_owner"]["p50"], 3),
                ms(r["scan_list_owner"]["p50"], 1),
                x(q["ours_list_owner/scan_list_owner"], 4),
            )
        )
    small = sizes[0]
    growth = []
    for size in sizes[1:]:
        q = rat[size]
        growth.append(
            (
                f"{int(size):,} vs {int(small):,}",
                x(q[f"ours_due growth vs {small}"]),
                x(q[f"scan_due growth vs {small}"]),
                x(q[f"ours_list_owner growth vs {small}"]),
                x(q[f"scan_list_owner growth vs {small}"]),
            )
        )
    slope = rat.get("log-log slope", {})
    growth.append(
        (
            "log-log slope (0 flat, 1 linear)",
            slope.get("ours_due"),
            slope.get("scan_due"),
            slope.get("ours_list_owner"),
            slope.get("scan_list_owner"),
        )
    )
    return (
        table(
            (
                "records",
                "ours due p50 ms",
                "scan due p50 ms",
                "ours ÷ scan",
                "ours owner p50 ms",
                "scan owner p50 ms",
                "ours ÷ scan",
            ),
            rows,
        )
        + "\n\nGrowth with the number of records (p50 ÷ p50 at the smallest size):\n\n"
        + table(("", "ours due", "scan due", "ours owner", "scan owner"), growth)
        + "\n"
    )


def _tui(doc: Doc) -> str:
    res, rat = doc["results"], doc["ratios"]
    parts = []
    if "table-ours" in res and "table-bare" in res:
        o, b = res["table-ours"], res["table-bare"]
        t = rat.get("table", {})
        parts.append(
            table(
                (
                    "1,000 leases",
                    "ours p50 ms",
                    "ours p95 ms",
                    "bare DataTable p50 ms",
                    "bare p95 ms",
                    "ours ÷ bare (p50 / p95)",
                ),
                [
                    (
                        "full render (empty → 1,000 rows → repainted)",
                        ms(o["full_render"]["p50"]),
                        ms(o["full_render"]["p95"]),
                        ms(b["full_render"]["p50"]),
                        ms(b["full_render"]["p95"]),
                        _pair(t, "p95", 2, "ours/bare full_render "),
                    ),
                    (
                        "countdown tick (2 columns x 1,000 rows)",
                        ms(o["tick"]["p50"]),
                        ms(o["tick"]["p95"]),
                        ms(b["tick"]["p50"]),
                        ms(b["tick"]["p95"]),
                        _pair(t, "p95", 2, "ours/bare tick "),
                    ),
                ],
            )
        )
    if "keys-ours" in res and "keys-bare" in res:
        o, b = res["keys-ours"], res["keys-bare"]
        k = rat.get("keys", {})

        def row(label: str, m: Doc) -> tuple[object, ...]:
            lat = m["latency"]
            return (
                label,
                lat["n"],
                ms(lat["p50"]),
                ms(lat["p95"]),
                ms(lat["p99"]),
                f"{m['lines_per_s_during']:,.0f}",
                m["lost"],
            )

        rows = [row("ours (app, log pane following)", o), row("bare DataTable + Log", b)]
        rows.append(
            (
                "ours ÷ bare",
                "",
                x(k.get("ours/bare latency p50")),
                x(k.get("ours/bare latency p95")),
                x(k.get("ours/bare latency p99")),
                "",
                "",
            )
        )
        if "keys-ours-nogc" in res:
            rows.append(row("diagnostic: ours with Python's gc disabled", res["keys-ours-nogc"]))
            rows.append(
                (
                    "diagnostic ÷ bare",
                    "",
                    x(k.get("ours without gc/bare latency p50")),
                    x(k.get("ours without gc/bare latency p95")),
                    x(k.get("ours without gc/bare latency p99")),
                    "",
                    "",
                )
            )
        parts.append(
            table(
                ("key → repaint", "n", "p50 ms", "p95 ms", "p99 ms", "log lines/s during", "lost"),
                rows,
            )
        )
    if "memory-ours" in res:
        o = res["memory-ours"]
        b = res.get("memory-bare", {})
        rows = []
        for label, m in (("ours (app, log pane)", o), ("bare Log(max_lines=10,000)", b)):
            if not m:
                continue
            rows.append(
                (
                    label,
                    f"{m['received']:,}",
                    f"{m['lines_per_s']:,.0f}" if m.get("lines_per_s") else "—",
                    mib(m["rss_before"]),
                    mib(m["rss_first_mark"]),
                    mib(m["rss_peak"]),
                    mib(m["rss_final"]),
                    f"{m['growth_after_first_mark']:+.1%}"
                    if m.get("growth_after_first_mark") is not None
                    else "—",
                )
            )
        parts.append(
            table(
                (
                    "log stream",
                    "lines",
                    "lines/s ingested",
                    "RSS before MiB",
                    f"RSS at {o['lines'] // 10:,} lines",
                    "peak MiB",
                    "final MiB",
                    "growth after first mark",
                ),
                rows,
            )
        )
        marks = o.get("rss_at_marks", [])
        if marks:
            parts.append(
                "RSS of ours every "
                f"{o['lines'] // 10:,} lines (MiB): "
                + ", ".join(mib(m["rss"]) for m in marks)
                + f" → {mib(o['rss_final'])} at the end."
            )
    return "\n\n".join(parts) + "\n"


def _footprint(doc: Doc) -> str:
    res, rat = doc["results"], doc["ratios"]
    rows = []
    for key, found in res.items():
        for variant in ("ours", "bare", "before"):
            m = found.get(variant)
            if not m:
                continue
            rows.append(
                (
                    key if variant == "ours" else "",
                    {"ours": "ours", "bare": "bare Textual app", "before": "before (baseline)"}[
                        variant
                    ],
                    f"{m['cpu_percent_per_app']:.2f}",
                    f"{m['cpu_percent_total']:.2f}",
                    mib(m["rss_per_app"]),
                    f"{m['bytes_per_s_per_app']:,.0f}",
                    f"{m['redis_commands_per_s']:.2f}",
                    ms(m["first_row"]["p50"], 0),
                    ms(m.get("first_row_cpu", {}).get("p50"), 0),
                )
            )
        r = rat.get(key, {})
        if r:
            rows.append(
                (
                    "",
                    "ours ÷ bare",
                    x(r.get("ours/bare cpu_percent_per_app")),
                    "",
                    x(r.get("ours/bare rss_per_app")),
                    x(r.get("ours/bare bytes_per_s_per_app")),
                    "",
                    x(r.get("ours/bare first_row p50")),
                    x(r.get("ours/bare first_row_cpu p50")),
                )
            )
        if r.get("ours/before cpu_percent_per_app") is not None:
            rows.append(
                (
                    "",
                    "ours ÷ before",
                    x(r.get("ours/before cpu_percent_per_app")),
                    "",
                    x(r.get("ours/before rss_per_app")),
                    x(r.get("ours/before bytes_per_s_per_app")),
                    "",
                    x(r.get("ours/before first_row")),
                    x(r.get("ours/before first_row_cpu")),
                )
            )
    parts = [
        table(
            (
                "set",
                "variant",
                "CPU % per app",
                "CPU % in all",
                "RSS MiB per app",
                "terminal bytes/s per app",
                "Redis commands/s",
                "launch → first row ms",
                "CPU to first row ms",
            ),
            rows,
        )
    ]
    cmds = []
    for key, found in res.items():
        m = found.get("ours")
        if m and m.get("redis_commands"):
            listed = ", ".join(f"`{k}` {v}" for k, v in m["redis_commands"].items())
            cmds.append(f"- {key} (ours, {m['window_s']:.0f} s): {listed}")
    if cmds:
        parts.append("Redis commands over the idle window:\n\n" + "\n".join(cmds))
    return "\n\n".join(parts) + "\n"


def _cli(doc: Doc) -> str:
    res, rat = doc["results"], doc["ratios"]
    rows = []
    for name, m in res.items():
        r = rat.get(name, {})
        cpu = m.get("cpu", {})
        rows.append(
            (
                f"`{name}`",
                m["n"],
                ms(m["p50"], 0),
                ms(m["p95"], 0),
                ms(cpu.get("p50"), 0),
                x(r.get("÷ python -c pass p50")) if r else "",
                x(r.get("cpu ÷ python -c pass p50")) if r else "",
                x(r.get("÷ docker ps p50")) if r else "",
                x(r.get("÷ redis-cli ping p50")) if r else "",
                f"{x(r.get('÷ before p50'))} / {x(r.get('cpu ÷ before p50'))}"
                if r.get("÷ before p50") is not None
                else "",
                ", ".join(str(c) for c in m.get("exit_codes", [])),
            )
        )
    return (
        table(
            (
                "command",
                "n",
                "wall p50 ms",
                "wall p95 ms",
                "CPU p50 ms",
                "wall ÷ python -c pass",
                "CPU ÷ python -c pass",
                "wall ÷ docker ps",
                "wall ÷ redis-cli ping",
                "÷ before (wall / CPU)",
                "exit",
            ),
            rows,
        )
        + "\n"
    )


# --- explanations ----------------------------------------------------------------------------

INTRO = """\
# Benchmarks

> Generated from `benchmarks/results/*.json` by `scripts/bench` — do not edit by hand. To
> re-render from existing results: `.venv/bin/python -m benchmarks --report-only`.

Run them with one command:

```sh
scripts/bench                    # full run: JSON in benchmarks/results/, this file regenerated
scripts/bench --quick            # small sizes, results in benchmarks/results/quick/, no doc change
scripts/bench --only reap,store  # some groups (provision, reap, store, tui, logs)
scripts/bench --only reap,store  # some groups (provision, reap, store, tui, footprint, cli)
scripts/bench --interval 30      # reaper poll interval for ours and the baselines (default 5 s)
```

A full run takes about 8 minutes on 2 cores (the 200-lease reap, the 100k store records and
the 1,000,000-line log stream are the long parts).

`scripts/bench` reuses the services in `CONTAINERLEASE_DOCKER_URL` / `CONTAINERLEASE_REDIS_URL`
when they answer, otherwise starts a private dockerd and redis-server and imports the offline
busybox image exactly as `scripts/test` does. All traffic stays on loopback. Benchmarks are not
tests: they never run under pytest, a missed goal is reported here and never fails anything.

## Method

These machines are noisy, so **every figure that matters is a ratio against a reference measured
in the same run**, on the same engine, image and container configuration: absolute milliseconds
are shown for orientation only. Sequential samples interleave ours and the references (shuffled
order, each after 100 ms of quiet), concurrent batches alternate, so drift hits all of them
alike. Percentiles are linear between closest ranks. Every container carries the
`containerlease.instance` label of a run-specific key prefix; the run removes exactly those
containers and keys afterwards.
"""

FAULTS_FILE = Path(__file__).with_name("faults.md")
"""Fault-recovery figures of the issue-13 tests, kept by hand (they are not a bench group)."""

EXPLAIN = {
    "provision": """\
## 1. Provision latency

From the request to the container running: ours is `LeaseService.provision` on a service that
stays open (as in the TUI) — validation, the quota-checked insert script, the name check, the
image check, then `Engine.create` + `Engine.start` with the `creating`/`running` steps and the
`docker_id` recorded in Redis.
References: bare aiodocker `containers.create` + `start` with the very create body
`Engine.create` sends, on a client that stays open; and `docker run -d` with equivalent flags,
one CLI process per request. Concurrent batches start N requests at once and time each from the
batch start; containers are removed between batches. **Goal: ours ÷ bare aiodocker < 1.10 (p50).**
""",
    "reap": """\
## 2. Reap lag

Deadline → container gone, read from the engine's own `destroy` events (`timeNano`, same host
clock), for 1 lease (repeated), 50 and 200 leases sharing one deadline. **Ours** is the real
`Reaper`, already running; the deadline is moved the way an extension moves it (`store.update`
with an `extended` event). **Original** is the original design implemented faithfully in
`benchmarks/reap.py` (`OriginalReaper`): every interval `KEYS lease:*`, and remove whatever has
`TTL <= 0` — but its keys expire at the deadline, Redis deletes them, and the scan never sees
one: it reaps nothing within a window of two polls past the deadline. **Fixed original**
(`FixedOriginalReaper`) keeps the poll-and-scan loop but lets the keys outlive the deadline and
compares an `expires_at` field. Both pollers use the same interval setting as ours, and start
half an interval before the deadline, so their first look after it is `interval / 2` late — the
expected wait under a random phase. **Floor**: bare aiodocker `delete(force=True)` of all the
containers at once, at the deadline. Throughput = containers ÷ time from the deadline to the
last one gone. **Goals: p99 < 1 s for 1 lease; throughput ≥ 80 % of the floor for 200.**
""",
    "store": """\
## 3. Store scaling

Finding due leases and listing one owner's leases among 1k, 10k and 100k records written in
`LeaseStore`'s own key schema (pipelined; on a private redis-server; a dedicated prefix, deleted
afterwards). At every size exactly 10 leases are due and the owner has 20: only the haystack
grows. Ours: `store.due()` (range query on the deadline sorted set) and `store.list_owner()`
(the owner's index + one pipelined `HGET` per lease). Reference: the original design's
`KEYS P:lease:*` scan with a pipelined `TTL` (due) or `HGET owner` (listing) per key. **Goal:
flat (at most logarithmic: < 2x over the 100x range) where the scan grows linearly.**
""",
    "tui": """\
## 4. TUI under load

Headless (Textual Pilot, 160x50), each case in a fresh process; the table and key cases run
twice each, ours and bare alternating, and their samples are pooled. A repaint is the compositor
update plus the terminal bytes it would write (the headless driver skips writing them; the hook
renders them anyway). **Table**: the real app (`create_app` with an open service, leases read
from Redis), `LeasesPane.set_leases` from an empty table to 1,000 rows repainted, and the
once-a-second countdown tick; reference: a bare `DataTable` with the same 7 columns and rows as
plain strings. **Keys**: the app follows a container printing ~5,000 lines/s (`l`), then arrow
keys move the table cursor; latency = key event from the driver → first repaint showing the
moved cursor; reference: a bare `DataTable` + `Log` fed from an identical container through bare
aiodocker, batched every 50 ms like the log pane. **Memory**: resident memory while a container
prints 1,000,000 lines into the followed log pane; reference: a bare `Log(max_lines=10_000)`.
**Goal: memory flat (< 10 % growth after the first 100,000 lines); the rest is reported as
ratios against the bare widgets.**
""",
    "logs": """\
## 5. Following a log under a flood

`benchmarks/log_flood.py`, headless at 160x50, each case in a fresh process, ours and the bare
widgets in the same run. **Flood**: a container prints numbered lines as fast as it can, without
end (busybox `awk`); for 60 s, every 200 ms, the benchmark asks the engine for the newest line
produced (`tail=1`, a connection of its own) and reads the newest line the view shows; **lag** is
how long ago the shown line was produced (production times interpolated between the samples'
sequence numbers). Meanwhile arrow keys move the lease table's cursor (key event → first
repaint showing it, as in section 4). Ours is the real app following the container; bare is a
`DataTable` + `Log` fed by bare aiodocker, batched every 50 ms (it reads all it can, so it falls
behind). **Table size**: the same key latency at ~5,000 lines/s with 5 and with 500 leases in
the table. **Goals: lag ≤ 1 s over the whole run; key → repaint p95 ≤ 150 ms under the flood;
p95 with 500 leases ≤ 1.2x p95 with 5.**
""",
    "footprint": """\
## 8. Footprint of idle apps

Each app is the real `containerlease --no-reaper` on a pseudo-terminal of its own (160x50,
`TERM=xterm-256color`, the guardian off), over 5, 50 or 500 lease records in Redis; 5 and 10
apps run at once over 50. Reference, the same number at once: a bare Textual app
(`benchmarks/footprint_bare.py`) with a `DataTable` of the same rows and a 1 s clock. After the
first lease row shows and 3 s of settling, an idle window: CPU from `/proc/PID/stat`, RSS at
its end, every byte the app writes to its terminal, and Redis `INFO commandstats` before and
after (the set's commands, ours excluded). Launch → first row: process start to the first
lease name in the terminal output. With `CONTAINERLEASE_BENCH_BASELINE_SRC` an older checkout
is measured in the same run as `before`. **Goals (issue 19): ≤ 0.5 % of a core and ≤ 70 MiB for
one idle app, ≤ 3 % and ≤ 5 Redis commands/s for 5 apps, ≤ 1 KiB/s of terminal output, ≤ 0.6 s
to the first row.**
""",
    "cli": """\
## 9. CLI latency

Wall time of one command, process start to exit, 50 leases in Redis; every command once to warm
up, then the rounds in shuffled order. References: `python -c pass` (the interpreter alone),
`docker ps -q` and `redis-cli ping` (a client talking to the same services). CPU is the
child's user + system time (`wait4`): on a loaded shared box wall time is mostly waiting for a
core, CPU time is what the command itself costs.
**Goals: `ls --json` ≤ 0.25 s, `--help` ≤ 0.15 s.**
""",
}


def _reading(name: str, doc: Doc) -> str:
    """A few sentences on what the numbers say, chosen by the verdicts."""
    goals = doc.get("goals", [])
    lines = []
    if name == "provision":
        verdicts = {g["met"] for g in goals}
        values = ", ".join(f"{x(g['value'], 3)}" for g in goals)
        if verdicts == {True}:
            lines.append(
                f"- Met ({values}). Ours adds a handful of Redis round trips (well under a "
                "millisecond each on loopback) to a container start that takes the engine tens "
                "of milliseconds: the difference disappears in the engine's own variation, which "
                "is why a ratio can even come out below 1."
            )
        elif False in verdicts:
            lines.append(
                f"- Missed ({values}): the Redis steps and the name check (which reads up to "
                "200 of the owner's leases) are not hidden by the engine's time here."
            )
        lines.append(
            "- `docker run -d` pays for a CLI process, version negotiation and a fresh "
            "connection per request on top of the same create and start."
        )
    elif name == "reap":
        for g in goals:
            state = {True: "met", False: "missed", None: "not judged"}[g["met"]]
            lines.append(f"- {g['goal']}: {g['value']} ({g['target']}) — {state}; {g['why']}.")
        lines.append(
            "- Ours sleeps until the earliest deadline and is woken by `extended` events, so its "
            "lag does not depend on the poll interval (compare the 60 s-interval row); a poller's "
            "lag is half an interval on average and a whole one at worst, plus its removals one "
            "after another. The original reaps nothing at all, at any interval."
        )
        sizes = [str(n) for n in doc["params"].get("sizes", [])]
        if sizes:
            big = sizes[-1]
            tput = doc["ratios"].get(big, {}).get("throughput ours/floor")
            if tput is not None and tput >= 0.9:
                lines.append(
                    f"- With {big} leases ours removes containers as fast as the floor "
                    f"({x(tput, 3)}): the engine, not the reaper, sets the pace; removals do not "
                    "get faster in parallel beyond a few at a time on this box."
                )
            elif tput is not None:
                lines.append(
                    f"- With {big} leases ours reaches {x(tput, 3)} of the floor's throughput: "
                    "per lease it also claims, reads and closes the record in Redis, and it "
                    "removes at most `[reaper] concurrency` (32) containers at a time."
                )
    elif name == "store":
        lines.append(
            "- Ours reads only the index entries it returns (a sorted-set range, the owner's "
            "index), so its time does not depend on how many other records exist; "
            "the scan touches every key in the database, and its time grows with it "
            "(log-log slope ≈ 1)."
        )
    elif name == "tui":
        res, rat = doc["results"], doc["ratios"]
        lines.append(
            "- The bare widgets do less: plain strings instead of styled cells, no filter, "
            "sorting or totals line, no other panes, and (for the logs) no per-line timestamp "
            "parsing, control-code cleaning or reconnect bookkeeping. The ratios show what "
            "that costs."
        )
        keys = rat.get("keys", {})
        if keys.get("ours/bare latency p95") is not None:
            text = (
                f"- Keys under log load: ours is {x(keys['ours/bare latency p50'])} the bare "
                f"app at p50 and {x(keys['ours/bare latency p95'])} at p95. At the commit "
                "measured here the log pane wrote each 50 ms batch into a `RichLog`, which "
                "measures and renders the lines into styled strips as they arrive; it has since "
                "become a virtual `LogView` that renders only the visible rows, like the bare "
                "`Log` (section 5 measures it). A key press that lands behind a batch waits "
                "for it."
            )
            nogc = keys.get("ours without gc/bare latency p99")
            if nogc is not None:
                text += (
                    " The app freezes what is alive once it is up out of the cyclic garbage "
                    "collector's sight and runs the collector less often (`_tune_gc` in "
                    "`tui/app.py`; without it the p95 ratio was about 6x). With the collector "
                    f"disabled altogether (a diagnostic run) ours' p99 ratio is {x(nogc)} "
                    f"against {x(keys['ours/bare latency p99'])}: what is left of the tail is "
                    "rendering, not the collector."
                )
            lines.append(text)
        mem = res.get("memory-ours")
        if mem:
            ingest = rat.get("memory", {}).get("ours/bare ingest lines/s")
            lines.append(
                f"- Memory: the pane keeps the last 10,000 lines, so after the first of them "
                f"memory stays put ({mib(mem['rss_first_mark'])} → {mib(mem['rss_final'])} MiB "
                f"over {mem['received']:,} lines). Ours ingested {mem['lines_per_s']:,.0f} "
                "lines/s"
                + (f" ({x(ingest)} the bare reader's rate)" if ingest is not None else "")
                + "; a container printing faster than that is followed with a growing delay "
                "(the backlog is capped, so memory still stays bounded)."
            )
    elif name == "logs":
        f = doc["params"].get("logflow", {})

        def m(key: str, default: float) -> str:
            return f"{float(f.get(key, default)) * 1000:,.0f} ms"

        lines.append(
            "- The log pane reads through `LogFlow` (`containerlease_tui/logflow.py`): a batch "
            f"(every {m('batch_seconds', 0.1)}) holds at most {f.get('burst', 2000):,} lines, and "
            "what it drops is counted, never cleaned or posted to the UI; the reader reads a "
            f"full stream for {m('slice_seconds', 0.004)} and then rests "
            f"{m('rest_seconds', 0.012)}, so a full socket cannot hold the event loop; and while "
            f"lines flow fast it probes the newest line (`tail=1`) every "
            f"{m('probe_seconds', 0.15)}: still unread {m('catch_up_seconds', 0.3)} later, "
            f"with the reader busy on a full stream for at least "
            f"{m('catch_up_busy_seconds', 0.05)} meanwhile, it reopens the stream at the "
            f"newest output (`tail={f.get('jump_tail', 200)}`). The view (`LogView`) is a "
            "`ScrollView` over a ring of plain strings that renders only the visible rows."
        )
        lines.append(
            "- The bare reader parses every frame and never skips, so under the flood its lag "
            "grows for as long as the flood lasts; ours shows the present and marks the gaps "
            '("… 184,322 lines skipped …", "… skipped ahead to the newest output …").'
        )
        load = ", ".join(f"{v:.2f}" for v in doc["machine"].get("load_avg_at_start", []))
        lines.append(
            "- The key figures swing with the machine's load (two cores shared with other "
            f"work; load average when this group started: {load}; commit "
            f"{doc['machine'].get('commit')}): compare rows of the same run, and the flood's "
            "ours ÷ bare, rather than absolute milliseconds."
        )
    elif name == "footprint":
        lines.append(
            "- A tick repaints only the countdown and cost cells whose text changed (a cell "
            "region, not the table: `DataTable.update_cell` repaints every visible row), and "
            "the clock updates without a layout pass (with one, Textual repainted the whole "
            "screen every second). The bare reference updates its changed cells with "
            "`update_cell`, as a plain Textual app would: with 50 leases some countdown changes "
            "every second, so it repaints the table every second."
        )
        lines.append(
            "- Redis: every app blocks on `XREAD` (2 s) for the event stream and checks health "
            "every 5 s (`PING`, and `SMEMBERS` of the reapers' heartbeats); nothing polls."
        )
        lines.append(
            "- Start-up is dominated by importing Textual (its command palette alone is about a "
            "third) and pydantic-settings; aiodocker and aiohttp now load after the first "
            "screen, when the first health check talks to Docker. RSS is mostly Textual's and "
            "pydantic's; the bare app imports neither the service nor pydantic."
        )
    elif name == "cli":
        lines.append(
            "- `ls`, `extend` and the completion helper import neither Textual nor aiodocker "
            "nor aiohttp (checked by `tests/unit/test_layering.py`); `--help` still reads the "
            "config first (so a broken file is reported), which costs pydantic-settings."
        )
    for note in doc.get("notes", []):
        lines.append(f"- Note: {note}")
    return "\n".join(lines)


def _logs(doc: Doc) -> str:
    res, rat = doc["results"], doc["ratios"]
    parts = []
    flood = [
        (label, res[k])
        for k, label in (
            ("flood-ours", "ours (app, log pane following)"),
            ("flood-bare", "bare DataTable + Log"),
        )
        if k in res
    ]
    if flood:

        def row(label: str, m: Doc) -> tuple[object, ...]:
            lag, lat = m.get("lag", {}), m["latency"]
            return (
                label,
                f"{m.get('seconds', 0):g}",
                f"{m.get('produced_lines_per_s') or 0:,.0f}",
                sec(lag.get("p50")),
                sec(lag.get("p95")),
                sec(lag.get("max")),
                lat["n"],
                ms(lat["p50"]),
                ms(lat["p95"]),
                ms(lat["p99"]),
                mib(m.get("rss_before")) + " → " + mib(m.get("rss_after")),
            )

        rows = [row(label, m) for label, m in flood]
        f = rat.get("flood", {})
        rows.append(
            (
                "ours ÷ bare",
                "",
                "",
                "",
                "",
                x(f.get("ours/bare lag max")),
                "",
                x(f.get("ours/bare latency p50")),
                x(f.get("ours/bare latency p95")),
                x(f.get("ours/bare latency p99")),
                "",
            )
        )
        parts.append(
            table(
                (
                    "unbounded flood",
                    "s",
                    "lines/s produced",
                    "lag p50 s",
                    "lag p95 s",
                    "lag max s",
                    "keys n",
                    "key p50 ms",
                    "key p95 ms",
                    "key p99 ms",
                    "RSS MiB",
                ),
                rows,
            )
        )
        ours = res.get("flood-ours")
        if ours:
            parts.append(
                f"Ours skipped {ours.get('skipped') or 0:,} lines it had read (counted) and "
                f"jumped to the newest output {ours.get('jumps') or 0:,} times; "
                f"{ours.get('markers_in_view') or 0:,} skip markers were in the view at the end."
            )
    keys = [
        (label, res[k])
        for k, label in (
            ("keys-ours-5", "ours, 5 leases"),
            ("keys-ours-500", "ours, 500 leases"),
            ("keys-bare-500", "bare DataTable (500 rows) + Log"),
        )
        if k in res
    ]
    if keys:
        rows = [
            (
                label,
                m["latency"]["n"],
                ms(m["latency"]["p50"]),
                ms(m["latency"]["p95"]),
                ms(m["latency"]["p99"]),
                m["lost"],
            )
            for label, m in keys
        ]
        t = rat.get("table size", {})
        rows.append(
            (
                "ours 500 ÷ ours 5",
                "",
                x(t.get("500/5 leases latency p50")),
                x(t.get("500/5 leases latency p95")),
                x(t.get("500/5 leases latency p99")),
                "",
            )
        )
        rows.append(
            (
                "ours 500 ÷ bare 500",
                "",
                x(t.get("ours 500/bare 500 latency p50")),
                x(t.get("ours 500/bare 500 latency p95")),
                x(t.get("ours 500/bare 500 latency p99")),
                "",
            )
        )
        parts.append(
            table(
                ("key → repaint at ~5,000 lines/s", "n", "p50 ms", "p95 ms", "p99 ms", "lost"), rows
            )
        )
    return "\n\n".join(parts) + "\n"


RENDER = {"provision": _provision, "reap": _reap, "store": _store, "tui": _tui, "logs": _logs}
RENDER = {
    "provision": _provision,
    "reap": _reap,
    "store": _store,
    "tui": _tui,
    "footprint": _footprint,
    "cli": _cli,
}


def render(docs: dict[str, Doc]) -> str:
    """The whole of ``docs/benchmarks.md``."""
    if not docs:
        return INTRO + "\nNo results yet: run `scripts/bench`.\n"
    parts = [INTRO, "## Machine\n", _machine(docs), "\n## Goals\n", _goals(docs), ""]
    for name, doc in docs.items():
        parts.append(EXPLAIN.get(name, f"## {name}\n"))
        try:
            parts.append(
                RENDER[name](doc)
                if name in RENDER
                else "```json\n" + json.dumps(doc["ratios"], indent=2) + "\n```\n"
            )
        except (KeyError, TypeError, IndexError) as exc:
            parts.append(f"(could not render {name}: {type(exc).__name__} {exc})\n")
        parts.append(_reading(name, doc) + "\n")
    if FAULTS_FILE.exists():
        parts.append(FAULTS_FILE.read_text())
    return "\n".join(parts).rstrip() + "\n"


def console(docs: dict[str, Doc]) -> str:
    """A plain-text summary for the terminal: every goal and every ratio."""
    if not docs:
        return "no results"
    out = []
    for name, doc in docs.items():
        out.append(f"== {name} ==")
        for g in doc.get("goals", []):
            value = g.get("value")
            out.append(
                f"  [{ {True: 'MET', False: 'MISSED', None: '----'}[g.get('met')] }] {g['goal']}: "
                f"{value if value is not None else '—'} (target {g['target']}) {g.get('why', '')}"
            )
        for line in _flatten(doc.get("ratios", {})):
            out.append(f"  {line}")
    return "\n".join(out)


def _flatten(tree: Any, path: str = "") -> list[str]:
    if isinstance(tree, dict):
        lines = []
        for key, value in tree.items():
            lines += _flatten(value, f"{path} {key}".strip())
        return lines
    return [f"{path}: {tree}"]
