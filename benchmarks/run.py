"""The benchmark runner: ``python -m benchmarks [--quick] [--only GROUPS]`` (or ``scripts/bench``).

Each group writes ``<results>/<group>.json``; afterwards the tables are printed and (for a full
run) ``docs/benchmarks.md`` is regenerated from every JSON file in ``benchmarks/results``.
Missed goals are reported, not raised: the exit status is non-zero only when a group crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import DOCS, RESULTS, BenchEnv, Result, cleanup, log, machine_info

GROUPS = ("provision", "reap", "store", "tui", "logs", "footprint", "cli")


async def _group(name: str, env: BenchEnv, machine: dict[str, Any]) -> Result:
    runner: Callable[[BenchEnv, dict[str, Any]], Awaitable[Result]]
    if name == "provision":
        from benchmarks.provision import run as runner
    elif name == "reap":
        from benchmarks.reap import run as runner
    elif name == "store":
        from benchmarks.store_scaling import run as runner
    elif name == "logs":
        from benchmarks.log_flood import run as runner
    elif name == "footprint":
        from benchmarks.footprint import run as runner
    elif name == "cli":
        from benchmarks.footprint import run_cli as runner
    else:
        from benchmarks.tui_load import run as runner
    return await runner(env, machine)


async def _main(args: argparse.Namespace) -> int:
    results: Path = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    env = BenchEnv.from_environ(quick=args.quick, interval=args.interval, results=results)
    machine = await machine_info(env)
    log(
        f"{machine['nproc']} cores, engine {machine['engine_version']}, "
        f"redis {machine['redis_version']}, python {machine['python']}; "
        f"prefix {env.base}; results in {results}"
    )
    crashed: list[str] = []
    for name in args.only:
        started = time.monotonic()
        log(f"=== {name} ===")
        try:
            result = await _group(name, env, machine)
            path = result.write(results)
            log(f"{name}: done in {time.monotonic() - started:.0f}s → {path}")
        except Exception:
            crashed.append(name)
            log(f"{name}: CRASHED\n{traceback.format_exc()}")
        finally:
            await cleanup(env)
    docs = DOCS if (args.docs if args.docs is not None else not args.quick) else None
    text = report.render(report.load(results))
    print(report.console(report.load(results)))
    if docs is not None:
        docs.write_text(text, encoding="utf-8")
        log(f"wrote {docs}")
    if crashed:
        log(f"crashed: {', '.join(crashed)}")
        return 1
    return 0


def _groups(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in GROUPS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(unknown)}: choose from {', '.join(GROUPS)}"
        )
    return chosen


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the chosen groups."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="ContainerLease benchmarks (ratios, not tests)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes; results go to benchmarks/results/quick"
    )
    parser.add_argument(
        "--only",
        type=_groups,
        default=list(GROUPS),
        help=f"comma-separated groups to run (default: all of {','.join(GROUPS)})",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="reaper poll interval in seconds, for ours and the baselines alike (default 5)",
    )
    parser.add_argument("--results", type=Path, default=None, help="folder for the JSON files")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="regenerate docs/benchmarks.md (default: on for a full run, off with --quick)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only regenerate docs/benchmarks.md and print the tables from existing JSON",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        loaded = report.load(args.results or RESULTS)
        print(report.console(loaded))
        if args.docs is not False:
            DOCS.write_text(report.render(loaded), encoding="utf-8")
            log(f"wrote {DOCS}")
        return 0
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
