"""The ``containerlease`` command: the TUI by default, a headless reaper, and a CLI for scripts.

Every subcommand is a thin shell over :class:`~containerlease_tui.leases.LeaseService`. Errors
are one line on stderr: exit 2 for bad usage or input, 1 for a runtime failure; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from containerlease_tui import __version__
from containerlease_tui.config import ConfigError, Settings, load_settings
from containerlease_tui.display import format_cost, format_rate, time_left
from containerlease_tui.models import (
    OWNER_PATTERN,
    Lease,
    LeaseEvent,
    LeaseStatus,
    format_memory,
    utcnow,
)
from containerlease_tui.sanitize import clean, clean_log_line, one_line
from containerlease_tui.spawn import helper_command as helper_command
from containerlease_tui.spawn import helper_env as helper_env
from containerlease_tui.spawn import spawn_detached

if TYPE_CHECKING:
    from containerlease_tui.embedded import EmbeddedStatus, StorePaths
    from containerlease_tui.leases import (
        ContainerState,
        CopyReport,
        ExecResult,
        ProvisionFailed,
        PullProgress,
        ReaperOverview,
        VolumeRow,
    )
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService
    from containerlease_tui.spend import Capacity, Outlook, TeamSpend

T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    # One line, and nothing in it a terminal acts on: messages quote records, engine and
    # registry errors, and input.
    click.echo(f"containerlease: {one_line(message)}", err=True)
    sys.exit(code)


def _run(settings: Settings, work: Callable[[LeaseService], Awaitable[T]]) -> T:
    """Run ``work`` with a service, mapping every error to one line and an exit code."""
    from containerlease_tui.leases import LeaseError
    from containerlease_tui.service_api import connect_service

    async def main() -> T:
        service = await connect_service(settings)  # the daemon's client, or direct
        try:
            return await work(service)
        finally:
            await service.close()

    try:
        return asyncio.run(main())
    except LeaseError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:  # `containerlease logs X -f | head`: the reader has had enough
        _quiet_stdout()
        sys.exit(0)
    except Exception as exc:  # the promise: never a traceback
        if os.environ.get("CONTAINERLEASE_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {one_line(str(exc), 200)}", 1)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _ago_or_left(seconds: float, *, long: bool = False) -> str:
    """A span as the app shows it (``1 h 59 min``; the shared rounding of
    :func:`containerlease_tui.display.time_left`), or in words for one value on its own line."""
    if seconds <= 0:
        return "-"
    return time_left(seconds, long=long)


def _public(lease: Lease, now: datetime, states: dict[str, ContainerState]) -> dict[str, Any]:
    """A lease's JSON with its container's real state (``container_state``, ``exit_code``;
    null when it has no container or Docker could not say)."""
    public: dict[str, Any] = lease.to_public(now)
    state = states.get(lease.id)
    public["container_state"] = state.state if state else None
    public["exit_code"] = state.exit_code if state else None
    public["oom_killed"] = state.oom_killed if state else None
    return public


def _status_cell(lease: Lease, states: dict[str, ContainerState]) -> str:
    """The lease's status, or what its container really does when that differs."""
    state = states.get(lease.id)
    if state is not None and state.trouble_for(lease):
        return state.describe()
    return lease.status.value


def _table(
    leases: list[Lease],
    now: datetime,
    states: dict[str, ContainerState] | None = None,
    unreadable: list[tuple[str, str]] | None = None,
) -> str:
    head = ["ID", "NAME", "IMAGE", "OWNER", "STATUS", "TIME LEFT", "COST", "EST.", "CONTAINER"]
    rows = [head]
    for lease in leases:
        left = _ago_or_left(lease.seconds_left(now)) if lease.status.is_active else "-"
        rows.append(
            [
                lease.id,
                lease.name,
                lease.image,
                lease.owner,
                _status_cell(lease, states or {}),
                left,
                format_cost(lease.accrued_cost(now)),
                format_cost(lease.estimated_cost),
                lease.short_docker_id or "-",
            ]
        )
    for lease_id, _why in unreadable or ():
        rows.append([lease_id, "?", "?", "?", "unreadable", "-", "-", "-", "-"])
    rows = [[clean(cell, tabs=False) for cell in row] for row in rows]  # fields of records
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _grid(rows: list[list[str]]) -> str:
    """Columns padded to fit; every cell cleaned (they quote records and events)."""
    rows = [[clean(cell, tabs=False) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _echo_lease(lease: Lease, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(lease.to_public(), indent=2))
    else:
        click.echo(_table([lease], utcnow()))
        if lease.error:
            click.echo(f"error: {one_line(lease.error)}")


class _WaitReport:
    """``provision --wait`` on a terminal: each step, and a live line while an image is pulled.

    Only on a terminal: a script reading stderr sees nothing but errors.
    """

    def __init__(self) -> None:
        self._live = False
        self._last = 0.0
        self._layers: dict[str, tuple[int, int]] = {}

    def status(self, lease: Lease) -> None:
        self._clear()
        step = lease.status.value + (
            f" {lease.image_ref}" if lease.status is LeaseStatus.PULLING else ""
        )
        click.echo(clean(f"{lease.name} ({lease.id}): {step}", tabs=False), err=True)

    def progress(self, report: PullProgress) -> None:
        if report.layer and report.total:
            self._layers[report.layer] = (report.current, report.total)
        now = time.monotonic()
        if now - self._last < 0.1:
            return  # a pull sends hundreds of messages a second
        self._last = now
        done = sum(current for current, _ in self._layers.values())
        total = sum(total for _, total in self._layers.values())
        line = f"  layers {report.layers_done}/{report.layers_total}"  # numbers only
        if total:
            line += f"  {_size(done)} / {_size(total)}"
        click.echo(f"\r\x1b[2K{line}", err=True, nl=False)
        self._live = True

    def _clear(self) -> None:
        if self._live:
            click.echo("\r\x1b[2K", err=True, nl=False)
            self._live = False

    def done(self) -> None:
        self._clear()


def _size(value: int) -> str:
    import humanize  # only for sizes: not worth its import time at start-up

    return humanize.naturalsize(value, binary=True)


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"invalid --env {pair[:40]!r}: use KEY=VALUE", 2)
        env[key] = value
    return env


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="containerlease")
@click.option("--reaper", "reaper_mode", is_flag=True, help="Run the headless reaper daemon.")
@click.option("--once", is_flag=True, help="With --reaper: one pass, then exit.")
@click.option("--dry-run", is_flag=True, help="With --reaper: report, change nothing.")
@click.option("--no-reaper", is_flag=True, help="Do not run the reaper inside the app.")
@click.pass_context
def cli(ctx: click.Context, reaper_mode: bool, once: bool, dry_run: bool, no_reaper: bool) -> None:
    """Lease Docker containers for a fixed time on a shared dev box.

    With no command, opens the terminal app.
    """
    settings: Settings = ctx.obj
    if ctx.invoked_subcommand not in _OWN_STORE_HANDLING and not _client_mode(ctx):
        settings = ctx.obj = _use_store(settings)
    if ctx.invoked_subcommand is not None:
        return
    if reaper_mode:
        from containerlease_tui.reaper import run_headless

        try:
            code = asyncio.run(run_headless(settings, once=once, dry_run=dry_run))
        except KeyboardInterrupt:
            code = 0
        sys.exit(code)
    if once or dry_run:
        _fail("--once and --dry-run go with --reaper", 2)
    from pathlib import Path

    from platformdirs import user_config_dir, user_state_dir

    from containerlease_tui.tui.app import create_app

    app = create_app(
        settings,
        reaper=not no_reaper,
        keymap_dir=Path(user_config_dir("containerlease")),
        state_dir=Path(user_state_dir("containerlease")),
    )
    app.run()
    if app.exit_note:
        with contextlib.suppress(OSError):  # the terminal may be gone (a hang-up)
            click.echo(clean(app.exit_note, tabs=False), err=True)


@cli.command()
@click.argument("image")
@click.option("--duration", "-d", help="Lease length, e.g. 30m, 2h, 1h30m.")
@click.option("--name", "-n", help="A name for the lease (default: IMAGE-xxxx).")
@click.option("--cpus", help="CPU limit, e.g. 0.5 or 2.")
@click.option("--memory", "-m", help="Memory limit, e.g. 512m or 2g.")
@click.option("--env", "-e", "env", multiple=True, help="KEY=VALUE, repeatable.")
@click.option(
    "--port", "-p", "ports", multiple=True, help="Publish a container port: 8080, 53/udp."
)
@click.option("--cmd", "cmd", help="The command to run instead of the catalog's (shell words).")
@click.option("--workdir", "-w", help="The command's working directory (absolute).")
@click.option(
    "--volume", "-v", "volumes", multiple=True, help="Mount your named volume: NAME:/path."
)
@click.option("--wait/--no-wait", default=False, help="Wait until the container runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def provision(
    settings: Settings,
    image: str,
    duration: str | None,
    name: str | None,
    cpus: str | None,
    memory: str | None,
    env: tuple[str, ...],
    ports: tuple[str, ...],
    cmd: str | None,
    workdir: str | None,
    volumes: tuple[str, ...],
    wait: bool,
    as_json: bool,
) -> None:
    """Lease a container of IMAGE (a catalog name; see `containerlease images`)."""
    from containerlease_tui.leases import ProvisionFailed, ProvisionRequest

    req = ProvisionRequest(image, duration, name, cpus, memory, _parse_env(env))
    req.ports, req.cmd, req.workdir, req.volumes = list(ports), cmd, workdir, list(volumes)

    async def work(service: LeaseService) -> Lease | ProvisionFailed | _DiedAtOnce:
        if wait:
            report = _WaitReport() if sys.stderr.isatty() else None
            try:
                made = await service.provision(
                    req,
                    on_progress=report.progress if report else None,
                    on_status=report.status if report else None,
                )
                await _ensure_reaper(service)
                died = await service.settled(made)
                if died is not None:
                    return _DiedAtOnce(made, died.describe(), await service.last_lines(made))
                return made
            except ProvisionFailed as exc:
                if exc.lease is None:
                    raise  # Redis was lost too: there is no record to show
                return exc
            finally:
                if report:
                    report.done()
        lease = await service.submit(req)
        # Provisioning goes on in a detached process: the pending record is already written,
        # so even if that process dies the reaper finds the lease at its deadline.
        spawn_detached(["_complete", lease.id])
        await _ensure_reaper(service)
        return lease

    result = _run(settings, work)
    if isinstance(result, ProvisionFailed):
        _provision_failed(result, as_json)
    if isinstance(result, _DiedAtOnce):
        result.fail(as_json)
    _echo_lease(result, as_json)


@dataclass(frozen=True)
class _DiedAtOnce:
    """``provision --wait``: the container started, then died within its first seconds."""

    lease: Lease
    state: str
    last_lines: list[str]

    def fail(self, as_json: bool) -> NoReturn:
        if as_json:
            public = self.lease.to_public()
            public["container_state"] = self.state
            click.echo(json.dumps(public, indent=2))
        for line in self.last_lines:
            click.echo(f"  | {clean(line, tabs=False)}", err=True)
        _fail(
            f"lease {self.lease.id}: its container {self.state} right after starting "
            "(the lease stays open: see `containerlease logs`, or `rm` it)",
            1,
        )


async def _ensure_reaper(service: LeaseService) -> None:
    """A lease was made or extended: if no reaper is alive, start the guardian (and say so on
    stderr, where a script's JSON on stdout is not disturbed)."""
    started = await service.ensure_reaper()
    if started is not None:
        click.echo(clean(started.describe(), tabs=False), err=True)


@cli.command("_guardian", hidden=True)
@click.pass_obj
def guardian(settings: Settings) -> None:
    """The detached guardian reaper (started when no reaper is alive; leaves by itself)."""
    from containerlease_tui.reaper.guardian import run_guardian

    try:
        code = asyncio.run(run_guardian(settings))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


@cli.command("_complete", hidden=True)
@click.argument("lease_id")
@click.pass_obj
def complete(settings: Settings, lease_id: str) -> None:
    """Finish provisioning a pending lease (run detached by `provision`)."""

    async def work(service: LeaseService) -> Lease:
        return await service.complete(lease_id)

    _run(settings, work)


@cli.command("ls")
@click.option("--all", "-a", "all_users", is_flag=True, help="Everybody's leases.")
@click.option("--active", is_flag=True, help="Only leases that hold (or will hold) a container.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_leases(settings: Settings, all_users: bool, active: bool, as_json: bool) -> None:
    """List your leases (or everybody's)."""

    async def work(
        service: LeaseService,
    ) -> tuple[list[Lease], list[tuple[str, str]], dict[str, ContainerState]]:
        from containerlease_tui.leases import LeaseError

        found = await service.list(all_users=all_users)
        bad = [] if active else [(x.lease_id, x.reason) for x in found.skipped]
        leases = [x for x in found if x.status.is_active] if active else list(found)
        try:
            states = await service.container_states(leases)
        except LeaseError:
            states = {}  # Docker is down: the records alone
        return leases, bad, states

    leases, unreadable, states = _run(settings, work)
    now = utcnow()
    if as_json:
        rows: list[dict[str, Any]] = [_public(lease, now, states) for lease in leases]
        rows += [{"id": i, "status": "unreadable", "error": why} for i, why in unreadable]
        click.echo(json.dumps(rows, indent=2))
    elif leases or unreadable:
        click.echo(_table(leases, now, states, unreadable))
        for lease_id, why in unreadable:
            click.echo(one_line(f"{lease_id}: record unreadable, skipped: {why}"))
    else:
        click.echo("no leases" + ("" if all_users else " (use --all to see everybody's)"))


@cli.command()
@click.argument("lease")
@click.option("--by", "-b", help="How much longer, e.g. 30m (default: the default duration).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def extend(settings: Settings, lease: str, by: str | None, as_json: bool) -> None:
    """Move LEASE's deadline (id, id prefix or name)."""

    async def work(service: LeaseService) -> Lease:
        extended = await service.extend(lease, by)
        await _ensure_reaper(service)
        return extended

    _echo_lease(_run(settings, work), as_json)


@cli.command()
@click.argument("lease")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def rm(settings: Settings, lease: str, as_json: bool) -> None:
    """Release LEASE: remove its container and close it."""

    async def work(service: LeaseService) -> Lease:
        return await service.release(lease)

    result = _run(settings, work)
    if as_json:
        _echo_lease(result, True)
    else:
        click.echo(clean(f"released {result.id} ({result.name})", tabs=False))


def _lifecycle(name: str, help_text: str) -> None:
    @cli.command(name, help=help_text)
    @click.argument("lease")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_obj
    def command(settings: Settings, lease: str, as_json: bool) -> None:

        def work(service: LeaseService) -> Coroutine[object, object, Lease]:
            method: Callable[[str], Coroutine[object, object, Lease]] = getattr(service, name)
            return method(lease)

        _echo_lease(_run(settings, work), as_json)


_lifecycle("stop", "Stop LEASE's container (the lease keeps running).")
_lifecycle("start", "Start LEASE's stopped container.")
_lifecycle("restart", "Restart LEASE's container.")


@cli.command()
@click.argument("lease")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(settings: Settings, lease: str, as_json: bool) -> None:
    """State, health, uptime, CPU and memory of LEASE's container."""
    from containerlease_tui.leases import ContainerState, LeaseStatusReport

    async def work(service: LeaseService) -> LeaseStatusReport:
        return await service.status(lease)

    report = _run(settings, work)
    info, stats = report.container, report.stats
    now = utcnow()
    data: dict[str, object] = {
        **report.lease.to_public(now),
        "state": info.state if info else "gone",
        "exit_code": info.exit_code if info else None,
        "oom_killed": info.oom_killed if info else None,
        "health": info.health if info else None,
        "uptime_seconds": (
            round((now - info.started_at).total_seconds())
            if info and info.running and info.started_at
            else None
        ),
        "cpu_percent": round(stats.cpu_percent, 2) if stats else None,
        "memory_usage": stats.memory_usage if stats else None,
        "memory_limit": stats.memory_limit if stats else None,
    }
    if report.lease.channel:
        connected = report.channel
        data["channel_state"] = (
            "connected" if connected else "absent" if connected is False else "closed"
        )
    if info is not None and info.ports:  # what the engine says now, over the record
        data["ports"] = {port: info.ports.get(port) for port in report.lease.ports}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(_table([report.lease], now))
    if report.lease.error:
        click.echo(f"error: {one_line(report.lease.error)}")
    uptime = data["uptime_seconds"]
    click.echo(
        clean(
            "state: "
            + (
                ContainerState(info.state, info.exit_code, info.oom_killed).describe()
                if info
                else "gone"
            )
            + (f"  health: {data['health']}" if data["health"] else "")
            + (
                f"  uptime: {_ago_or_left(float(uptime), long=True)}"
                if isinstance(uptime, int)
                else ""
            ),
            tabs=False,
        )
    )
    if stats:
        click.echo(
            f"cpu: {stats.cpu_percent:.1f}%  memory: {format_memory(stats.memory_usage)}"
            f" / {format_memory(stats.memory_limit)}"
        )
    _echo_lifecycle_status(data)


@cli.command()
@click.argument("lease")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--tail", default="all", help="Only the last N lines.")
@click.option("--raw", is_flag=True, help="Write the output as it is, even to a terminal.")
@click.pass_obj
def logs(settings: Settings, lease: str, follow: bool, tail: str, raw: bool) -> None:
    """Print LEASE's container output.

    On a terminal, escape sequences and other control codes are removed first (a container
    could otherwise set the title, write the clipboard or type into the terminal); piped, or
    with --raw, the output is written as it is.
    """

    if tail != "all" and not tail.isdigit():
        _fail(f"invalid --tail {tail[:20]!r}: a number or 'all'", 2)
    out = sys.stdout
    clean_line: Callable[[str], str] | None = None if raw or not out.isatty() else clean_log_line

    async def work(service: LeaseService) -> str | None:
        target = await service.container_for(lease, "read the logs of")
        out = sys.stdout
        try:
            async for line in service.logs(target, follow=follow, tail=tail):
                out.write((clean_line(line) if clean_line else line) + "\n")
                out.flush()
        except LeaseError:
            # The container was removed under a follow (reaped, or released elsewhere): that is
            # the end of the logs, not a failure. Anything else is.
            ending = await _followed_lease_ended(service, target) if follow else None
            if ending is None:
                raise
            return ending
        return await _followed_lease_ended(service, target) if follow else None

    from containerlease_tui.leases import LeaseError

    ending = _run(settings, work)
    if ending:
        click.echo(f"containerlease: {ending}", err=True)


@cli.command()
@click.argument("lease")
@click.pass_obj
def shell(settings: Settings, lease: str) -> None:
    """Open an interactive shell in LEASE's container."""

    async def work(service: LeaseService) -> int:
        target = await service.container_for(lease, "open a shell in")
        return await service.shell(target)

    sys.exit(_run(settings, work))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def images(settings: Settings, as_json: bool) -> None:
    """The image catalog, with prices and whether each image is present locally."""
    from containerlease_tui.leases import ImageRow

    async def work(service: LeaseService) -> list[ImageRow]:
        return await service.images()

    rows = _run(settings, work)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "ref": r.spec.ref,
                        "hourly_rate": str(r.spec.hourly_rate),
                        "description": r.spec.description,
                        "cpus": r.spec.cpus,
                        "memory": r.spec.memory,
                        "present": r.present,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    width = max(len(r.name) for r in rows)
    ref_width = max(len(r.spec.ref) for r in rows)
    for r in rows:
        where = {True: "local", False: "pull", None: "?"}[r.present]
        price = format_rate(r.spec.hourly_rate)
        click.echo(
            f"{r.name.ljust(width)}  {r.spec.ref.ljust(ref_width)}  {price}"
            f"  {where:5}  {one_line(r.spec.description)}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def doctor(settings: Settings, as_json: bool) -> None:
    """Check the store (Redis), the Docker engine and whether a reaper is running."""
    from containerlease_tui.doctor import DoctorReport, check, check_via_daemon, store_target
    from containerlease_tui.service_api import service_socket

    via = service_socket(settings)
    if via is not None:  # client mode: no store of our own to look at
        report: DoctorReport = _run(settings, lambda service: check_via_daemon(service, via))
    else:
        target, problem = store_target(settings)
        resolved = target.settings if target else settings
        report = _run(resolved, lambda service: check(service, target, problem))
    if as_json:
        click.echo(json.dumps(report.to_public(), indent=2))
    else:
        for line in report.lines():
            click.echo(clean(line))  # host names and errors come from outside
    if not report.ok:
        sys.exit(1)


# --- issue 16: the embedded store, exec, completion ----------------------------------------------

# Commands that look after the store themselves: `store` manages the embedded server (and must
# not start it to stop it), `doctor` reports a store that cannot start instead of failing, and
# `images` never talks to the store.
_OWN_STORE_HANDLING = frozenset({"store", "doctor", "images"})


def _client_mode(ctx: click.Context) -> bool:
    """A client of the daemon (``service_api.service_socket``): no store of our own. The
    daemon and the reaper are never clients."""
    from containerlease_tui.service_api import service_socket

    if ctx.invoked_subcommand in ("serve", "_guardian") or ctx.params.get("reaper_mode"):
        return False
    return service_socket(ctx.obj) is not None


@cli.command()
@click.option("--no-reaper", is_flag=True, help="Do not run the reaper in the daemon.")
@click.pass_obj
def serve(settings: Settings, no_reaper: bool) -> None:
    """The lease daemon: hold Docker and Redis, serve the app and the CLI on [service] socket."""
    from containerlease_tui.daemon.server import serve as run_daemon

    try:
        code = asyncio.run(run_daemon(settings, reaper=not no_reaper))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


def _use_store(settings: Settings) -> Settings:
    """Settings pointing at the store to use: the configured URL, else the embedded store
    (started, or reused, here)."""
    from containerlease_tui.embedded import EmbeddedStoreError, resolve

    try:
        return resolve(settings).settings
    except EmbeddedStoreError as exc:
        _fail(str(exc), 1)


def _provision_failed(exc: ProvisionFailed, as_json: bool) -> NoReturn:
    """``provision --wait`` failed after its record was written: show the record, exit 1."""
    lease = exc.lease
    assert lease is not None
    if as_json:
        click.echo(json.dumps(lease.to_public(), indent=2))
    _fail(f"{exc} (lease {lease.id}, recorded as failed)", 1)


async def _followed_lease_ended(service: LeaseService, lease: Lease) -> str | None:
    """Why a followed log ended, when its container is gone (or going); None while it runs.

    The reaper removes the container before it closes the lease, so the close is waited for
    briefly to name it.
    """
    from containerlease_tui.leases import LeaseError

    started = time.monotonic()
    while True:
        try:
            report = await service.status(lease.id)
        except LeaseError:
            return None
        state = report.container.state if report.container else "gone"
        if state not in ("gone", "removing", "dead", "exited"):
            return None
        current = report.lease
        if not current.status.is_active:
            return f"lease {current.id} {current.status.value}: its container was removed"
        if state == "exited" and current.status.value == "stopped":
            return None  # stopped by its owner: the plain end of a follow
        # An exited container is given 2 s to turn out reaped; a vanishing one 10 s to be closed.
        if time.monotonic() - started >= (2.0 if state == "exited" else 10.0):
            if state == "exited":
                return None  # its process ended by itself and nothing removed it
            return f"the container of lease {current.id} was removed"
        await asyncio.sleep(0.2)


@cli.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("lease")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_command(settings: Settings, lease: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in LEASE's container, without a terminal: `exec LEASE -- CMD ARGS...`.

    Its stdout and stderr go to ours, apart; its exit code is ours.
    """

    if command[:1] == ("--",):  # click keeps a "--" that follows LEASE
        command = command[1:]
    if not command:
        _fail("exec needs a command: containerlease exec LEASE -- CMD [ARGS...]", 2)

    async def work(service: LeaseService) -> ExecResult:
        target = await service.container_for(lease, "run a command in")
        return await service.exec(target, list(command))

    result = _run(settings, work)
    for stream, data in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
    if result.truncated:
        click.echo("containerlease: output cut at the exec output limit", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("lease")
@click.argument("message")
@click.option(
    "--timeout", "wait", default="30s", show_default=True, help="How long to wait for the reply."
)
@click.pass_obj
def send(settings: Settings, lease: str, message: str, wait: str) -> None:
    """Send one JSON MESSAGE to the program in LEASE's container; print its JSON reply.

    For images with `channel = true`: the program listens on
    /run/containerlease/channel.sock (docs/channel.md). A timeout, an absent or closed
    channel, or a reply that is not JSON: one line, exit 1.
    """
    from containerlease_tui.channel import ChannelReply
    from containerlease_tui.durations import DurationError, parse_duration
    from containerlease_tui.sanitize import json_line

    try:
        payload: object = json.loads(message)
    except ValueError:
        _fail('invalid message: not JSON (for example \'{"command": "ping"}\')', 2)
    try:
        within = parse_duration(wait).total_seconds()
    except DurationError as exc:
        _fail(f"invalid timeout: {exc}", 2)

    async def work(service: LeaseService) -> ChannelReply:
        return await service.send(lease, payload, within)

    click.echo(json_line(_run(settings, work).reply))


@cli.group()
def store() -> None:
    """The embedded store: the private Redis-compatible server used when no URL is set."""


def _store_paths(settings: Settings) -> StorePaths:
    from containerlease_tui.embedded import StorePaths, url_configured
    from containerlease_tui.redact import redact_url

    if url_configured(settings):
        click.echo(
            f"note: a Redis URL is configured ({redact_url(settings.redis.url)}): "
            "the embedded store is not used",
            err=True,
        )
    return StorePaths.default()


@store.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def store_status(settings: Settings, as_json: bool) -> None:
    """Whether the embedded store runs, and where its data is."""
    from containerlease_tui.embedded import status, url_configured

    state = status(_store_paths(settings))
    if as_json:
        click.echo(json.dumps(_store_json(state, used=not url_configured(settings)), indent=2))
    else:
        click.echo(state.describe())


@store.command("start")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def store_start(settings: Settings, as_json: bool) -> None:
    """Start the embedded store (any command that needs it starts it too)."""
    from containerlease_tui.embedded import EmbeddedStoreError, ensure_running, url_configured

    try:
        state = ensure_running(_store_paths(settings))
    except EmbeddedStoreError as exc:
        _fail(str(exc), 1)
    if as_json:
        click.echo(json.dumps(_store_json(state, used=not url_configured(settings)), indent=2))
    else:
        click.echo(("started " if state.started else "already running: ") + state.describe())


@store.command("stop")
@click.pass_obj
def store_stop(settings: Settings) -> None:
    """Stop the embedded store; its data stays. Nothing reaps leases while it is stopped."""
    from containerlease_tui.embedded import EmbeddedStoreError, stop

    paths = _store_paths(settings)
    try:
        stopped = stop(paths)
    except EmbeddedStoreError as exc:
        _fail(str(exc), 1)
    click.echo(
        f"stopped the embedded store at {paths.root}"
        if stopped
        else f"the embedded store at {paths.root} is not running"
    )


# --- activity, spend, capacity, reapers --------------------------------------------------------


def _event_line(event: LeaseEvent) -> str:
    """One event for people: time, actor, lease, type, detail (all cleaned)."""
    detail = f"  {one_line(event.detail, 200)}" if event.detail else ""
    return clean(
        f"{event.at:%Y-%m-%d %H:%M:%S}  {event.actor or event.owner:<12}  {event.lease:<8}  "
        f"{event.type.value:<9}{detail}",
        tabs=False,
    ).rstrip()


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen.")
@click.option("--lease", "-l", "lease_ref", help="Only this lease's events (id, prefix or name).")
@click.option("--user", "-u", help="Only events of leases USER owns or actions USER took.")
@click.option("--type", "-t", "types", multiple=True, help="Only these types (comma-separated).")
@click.option("--since", "-s", help="Only events of the last SPAN, e.g. 30m, 2h, 1d.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="At most this many past events.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def events(
    settings: Settings,
    follow: bool,
    lease_ref: str | None,
    user: str | None,
    types: tuple[str, ...],
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The activity log: who did what to which lease, newest last.

    The log is the event stream, capped at [redis] stream_maxlen entries: older history is
    gone, and the command says so. Everybody sees every event; the details of another user's
    events are shown to admins only (others read "(redacted)").
    """
    from containerlease_tui.activity import EventFilter, parse_types
    from containerlease_tui.durations import parse_duration

    try:
        kinds = parse_types(types)
        span = parse_duration(since) if since else None
    except ValueError as exc:
        _fail(str(exc), 2)
    if user is not None and not OWNER_PATTERN.fullmatch(user):
        _fail(f"invalid --user {user[:40]!r}", 2)
    since_at = utcnow() - span if span is not None else None

    def emit(event: LeaseEvent) -> None:
        if as_json:
            click.echo(json.dumps(event.to_public()))
        else:
            click.echo(_event_line(event))
        sys.stdout.flush()

    async def work(service: LeaseService) -> None:
        lease_id: str | None = None
        if lease_ref is not None:
            lease_id = await _lease_id(service, lease_ref)
        filt = EventFilter(lease=lease_id, user=user, types=kinds, since=since_at)
        history = await service.event_log(filt, limit=limit)
        if (
            history.trimmed
            and history.oldest is not None
            and (since_at is None or since_at < history.oldest)
        ):
            click.echo(
                "containerlease: older events are gone: the log keeps the last "
                f"{history.maxlen} or so (the oldest kept is from "
                f"{history.oldest:%Y-%m-%d %H:%M:%S} UTC)",
                err=True,
            )
        for event in history.events:
            emit(event)
        if not follow:
            if not history.events and not as_json:
                click.echo("no events", err=True)
            return
        cursor = history.cursor
        while True:
            batch = await service.events(after=cursor, block_ms=1000)
            cursor = batch.cursor
            for event in service.shown(batch.events, filt):
                emit(event)

    _run(settings, work)


async def _lease_id(service: LeaseService, ref: str) -> str:
    """A lease ref as an id; an id whose record is gone (only events are left) as it is."""
    from containerlease_tui.leases import NotFound

    try:
        return (await service.resolve(ref)).id
    except NotFound:
        if re.fullmatch(r"[a-z0-9]{4,32}", ref):
            return ref
        raise


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def spend(settings: Settings, as_json: bool) -> None:
    """What leases cost today and this week, per user (everybody for an admin, else you and the
    totals), and what is left of your daily budget."""

    async def work(service: LeaseService) -> tuple[TeamSpend, Outlook]:
        now = utcnow()
        return await service.spend(now), await service.outlook(now)

    team, outlook = _run(settings, work)
    if as_json:
        click.echo(json.dumps({**team.to_public(), "budget": outlook.to_public()}, indent=2))
        return
    head = ["USER", "ACTIVE", "TODAY", "THIS WEEK", "RATE NOW", "IMAGES"]
    rows = [head]
    for row in [*team.users, team.total]:
        rows.append(
            [
                "(everybody)" if row.user == "*" else row.user,
                str(row.active),
                format_cost(row.today),
                format_cost(row.week),
                format_rate(row.rate),
                ", ".join(f"{k} {v}" for k, v in sorted(row.by_image.items())) or "-",
            ]
        )
    click.echo(_grid(rows))
    click.echo(_budget_line(outlook))


def _budget_line(outlook: Outlook) -> str:
    from containerlease_tui.spend import format_hours

    budget = (
        "no daily budget"
        if outlook.budget_hours is None
        else f"{format_hours(outlook.booked_hours)} of {format_hours(outlook.budget_hours)} "
        f"lease-hours booked today, {format_hours(outlook.remaining_hours or Decimal(0))} left"
    )
    return (
        f"you: {format_cost(outlook.spent_today)} today; {budget}; "
        f"{outlook.active_mine} of {outlook.max_per_user} leases active"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def capacity(settings: Settings, as_json: bool) -> None:
    """The box's limits: active leases against [limits] max_leases_total, and the CPUs and
    memory the active leases reserve against the engine's."""

    box = _run(settings, lambda service: service.capacity())
    if as_json:
        click.echo(json.dumps(box.to_public(), indent=2))
        return
    click.echo(_capacity_text(box))


def _capacity_text(box: Capacity) -> str:
    cpus = (
        f"{box.cpus_reserved:g} of {box.host_cpus}" if box.host_cpus else f"{box.cpus_reserved:g}"
    )
    memory = (
        f"{_size(box.memory_reserved)} of {_size(box.host_memory)}"
        if box.host_memory
        else _size(box.memory_reserved)
    )
    full = " (full: provision is refused until one ends)" if box.full else ""
    return (
        f"leases  {box.active} of {box.max_total} active{full}\n"
        f"cpus    {cpus} reserved\nmemory  {memory} reserved"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def reapers(settings: Settings, as_json: bool) -> None:
    """Every live reaper (host, pid, mode, last pass, counts), the claims held now and the next
    deadlines: whether cleanup is happening."""

    view = _run(settings, lambda service: service.reaper_overview())
    if as_json:
        click.echo(json.dumps(view.to_public(), indent=2))
        return
    click.echo(_reapers_text(view))


def _reapers_text(view: ReaperOverview) -> str:
    now = view.at
    lines: list[str] = []
    if view.status.beats:
        rows = [["HOST", "PID", "MODE", "LAST PASS", "PASSES", "REAPED", "FAILED"]]
        for beat in view.status.beats:
            rows.append(
                [
                    beat.host,
                    str(beat.pid),
                    beat.mode,
                    _ago(beat.last_pass, now),
                    str(beat.passes),
                    str(beat.reaped),
                    str(beat.failed),
                ]
            )
        lines.append(_grid(rows))
    else:
        lines.append(view.status.describe(now))
    lines.append(f"claims held: {', '.join(view.claimed)}" if view.claimed else "claims held: none")
    if view.upcoming:
        lines.append("next deadlines:")
        lines.extend(
            clean(f"  {lease_id}  in {time_left((at - now).total_seconds())}", tabs=False)
            for lease_id, at in view.upcoming
        )
    else:
        lines.append("next deadlines: none")
    return "\n".join(lines)


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "no pass yet"
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return "?"
    return f"{time_left((now - at).total_seconds())} ago"


def _store_json(state: EmbeddedStatus, *, used: bool) -> dict[str, object]:
    return {
        "used": used,
        "running": state.running,
        "path": str(state.paths.root),
        "url": state.paths.url,
        "server": state.server,
        "pid": state.pid,
    }


# --- ports, volumes, cp (the container lifecycle, issue 17) ---------------------------------


def _echo_lifecycle_status(data: dict[str, object]) -> None:
    """``status``' lines for ports, command and working directory, volumes."""
    ports = data.get("ports")
    if isinstance(ports, dict) and ports:
        shown = "  ".join(f"{port} -> {where or '-'}" for port, where in ports.items())
        click.echo(clean(f"ports: {shown}", tabs=False))
    cmd = data.get("cmd")
    if isinstance(cmd, list):
        import shlex

        click.echo(clean(f"cmd: {shlex.join(str(arg) for arg in cmd)}", tabs=False))
    if data.get("workdir"):
        click.echo(clean(f"workdir: {data['workdir']}", tabs=False))
    volumes = data.get("volumes")
    if isinstance(volumes, dict) and volumes:
        shown = "  ".join(f"{name}:{path}" for name, path in volumes.items())
        click.echo(clean(f"volumes: {shown}", tabs=False))
    if data.get("channel"):
        at = data.get("channel_at")
        last = f"  last message: {_ago(at, utcnow())}" if isinstance(at, str) else ""
        click.echo(f"channel: {data.get('channel_state', 'closed')}{last}")


def _volume_json(row: VolumeRow) -> dict[str, object]:
    return {
        "name": row.name,
        "engine_name": row.engine_name,
        "size": row.size,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "last_used": row.last_used.isoformat() if row.last_used else None,
        "leases": list(row.leases),
    }


def _list_volumes(settings: Settings, as_json: bool) -> None:
    async def work(service: LeaseService) -> list[VolumeRow]:
        return await service.volumes()

    rows = _run(settings, work)
    if as_json:
        click.echo(json.dumps([_volume_json(r) for r in rows], indent=2))
        return
    table = [["NAME", "SIZE", "LAST USED", "HELD BY"]]
    now = utcnow()
    for row in rows:
        used = "-"
        if row.leases:
            used = "now"
        elif row.last_used:
            import humanize  # only for this table (the CLI starts without it)

            used = humanize.naturaltime(now - row.last_used)
        table.append(
            [
                row.name,
                _size(row.size) if row.size is not None else "-",
                used,
                ", ".join(row.leases) or "-",
            ]
        )
    table = [[clean(cell, tabs=False) for cell in line] for line in table]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@cli.command("volumes")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def volumes_command(settings: Settings, as_json: bool) -> None:
    """Your named volumes: size, last use, the lease that holds each (`volume ls`)."""
    _list_volumes(settings, as_json)


@cli.group("volume")
def volume_group() -> None:
    """Your named volumes, which outlive leases (`provision IMAGE -v NAME:/path`)."""


@volume_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def volume_ls(settings: Settings, as_json: bool) -> None:
    """Your named volumes: size, last use, the lease that holds each."""
    _list_volumes(settings, as_json)


@volume_group.command("rm")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def volume_rm(settings: Settings, name: str, as_json: bool) -> None:
    """Remove your volume NAME and its files (refused while a lease holds it)."""

    async def work(service: LeaseService) -> str:
        return await service.volume_rm(name)

    removed = _run(settings, work)
    if as_json:
        click.echo(json.dumps({"name": removed, "removed": True}, indent=2))
    else:
        click.echo(clean(f"removed volume {removed}", tabs=False))


_CONTAINER_SIDE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(/.*)", re.S)


@cli.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def cp_command(settings: Settings, source: str, dest: str, as_json: bool) -> None:
    """Copy files into or out of a lease's container, running or stopped.

    `cp ./src LEASE:/app` copies ./src into the folder /app (as /app/src);
    `cp LEASE:/app/out.txt .` copies out. Symlinks out of ./src are refused; an archive entry
    that would land outside the destination is refused.
    """
    from pathlib import Path

    into, outof = _CONTAINER_SIDE.fullmatch(dest), _CONTAINER_SIDE.fullmatch(source)
    if bool(into) == bool(outof):
        _fail("cp needs one host path and one LEASE:/path (cp ./src LEASE:/app)", 2)
    progress = sys.stderr.isatty() and not as_json

    def report(size: int) -> None:
        click.echo(f"\r{_size(size)} received", err=True, nl=False)

    async def work(service: LeaseService) -> CopyReport:
        if into:
            return await service.copy_in(into.group(1), Path(source), into.group(2))
        assert outof is not None
        return await service.copy_out(
            outof.group(1), outof.group(2), Path(dest), report if progress else None
        )

    done = _run(settings, work)
    if progress and outof:
        click.echo("", err=True)
    if as_json:
        payload = {
            "lease": done.lease.id,
            "direction": "in" if into else "out",
            "files": done.files,
            "bytes": done.size,
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        way = "into" if into else "out of"
        click.echo(
            clean(
                f"copied {done.files} file(s), {_size(done.size)} {way} {done.lease.id}", tabs=False
            )
        )


def _wire_completion() -> None:
    from containerlease_tui.completion import wire

    wire(cli)


_wire_completion()


def main() -> None:
    # Config is read before parsing, so even --help reports a broken config file.
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc), 2)
    try:
        code = cli.main(prog_name="containerlease", obj=settings, standalone_mode=False)
    except click.UsageError as exc:
        # One line, as for every other error; the command's --help has the rest.
        where = exc.ctx.command_path if exc.ctx else "containerlease"
        _fail(f"{exc.format_message()} (see {where} --help)", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(0)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
