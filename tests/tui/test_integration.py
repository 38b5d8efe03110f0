"""The app driven by Pilot against the real Docker engine and redis-server (scripts/test).

Every wait is on a condition with a timeout (``settle``), never a fixed sleep. "Another
process" is a real one: the CLI or the headless reaper run as subprocesses with the test's
config, as on a shared box.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from textual.widgets import ProgressBar, Select

from containerlease_tui.config import Settings
from containerlease_tui.engine import PullProgress
from containerlease_tui.leases import LeaseService, ProvisionRequest
from containerlease_tui.models import EventType, Lease, LeaseStatus, utcnow
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen
from tests.store_helpers import events_for

from .helpers import settle

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_containers")]

SIZE = (160, 48)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[LeaseService]:
    svc = LeaseService.open(settings, user="alice")
    yield svc
    await svc.close()


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[LeaseService]:
    """Another user's service instance, as another process on the box would have."""
    svc = LeaseService.open(settings, user="bob")
    yield svc
    await svc.close()


class Process:
    """``python -m containerlease_tui ARGS`` with the test's config, run asynchronously (the
    app keeps running meanwhile), killed by its pid at the end of the test."""

    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "CONTAINERLEASE_CONFIG": str(config)}
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "containerlease_tui",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


@pytest.fixture
async def processes(config_file: Path) -> AsyncIterator[Process]:
    runner = Process(config_file)
    yield runner
    await runner.stop()


async def _event_at(service: LeaseService, lease_id: str, type: EventType) -> datetime:
    """When the store recorded ``type`` for the lease (the ``at`` of the stream entry)."""
    for event in await events_for(service.store, lease_id):
        if event.type is type:
            return event.at
    raise AssertionError(f"no {type.value} event for {lease_id}")


def _record_toasts(app: ContainerLeaseApp) -> list[str]:
    toasts: list[str] = []
    notify = app.notify

    def record(message: str, *args: Any, **kwargs: Any) -> None:
        toasts.append(str(message))
        notify(message, *args, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    return toasts


def _by_name(app: ContainerLeaseApp, name: str) -> Lease | None:
    for lease in app.main.leases.leases.values():
        if lease.name == name:
            return lease
    return None


def _cell(app: ContainerLeaseApp, lease_id: str, column: str) -> str:
    return str(app.main.leases.table.get_cell(lease_id, column))


async def _ready(pilot: Any) -> None:
    app = pilot.app
    await settle(
        pilot,
        lambda: app.main.status.redis_ok is True and app.main.status.docker_ok is True,
        within=15,
        what="the app to connect",
    )


async def test_provision_logs_extend_delete(
    settings: Settings, service: LeaseService, docker: aiodocker.Docker
) -> None:
    app = create_app(settings, service=service, reaper=False, all_users=True)
    toasts = _record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        main = app.main

        # Provision through the form: n, the image, a duration, a name, enter.
        await pilot.press("n")
        assert main.form.query_one("#image", Select).has_focus
        assert main.form.image == "busybox"
        await pilot.click("#duration")
        await pilot.press(*"30m")
        await pilot.click("#name")
        await pilot.press(*"web", "enter")
        await settle(pilot, lambda: _by_name(app, "web") is not None, what="the row to appear")
        await settle(
            pilot,
            lambda: _by_name(app, "web").status is LeaseStatus.RUNNING,  # type: ignore[union-attr]
            within=30,
            what="the lease to run",
        )
        lease = _by_name(app, "web")
        assert lease is not None and lease.docker_id
        await settle(pilot, lambda: _cell(app, lease.id, "status") == "running")
        assert _cell(app, lease.id, "container") == lease.docker_id[:12]
        # The stream may report "running" before the form's own worker finishes: wait for it.
        await settle(pilot, lambda: any("is running" in t for t in toasts), what="the toast")

        # Logs of the selected lease: the container's 'tick' lines.
        main.leases.table.select_lease(lease.id)
        main.leases.table.focus()
        await pilot.press("l")
        await settle(
            pilot,
            lambda: sum(line == "tick" for line in main.logs.lines) >= 2,
            within=15,
            what="tick lines in the log pane",
        )

        # Extend by 30m: the deadline and the countdown move.
        before = main.leases.leases[lease.id].expires_at
        left_before = _cell(app, lease.id, "left")
        await pilot.press("e")
        await settle(pilot, lambda: isinstance(app.screen, ExtendScreen))
        await pilot.press(*"30m", "enter")
        await settle(
            pilot,
            lambda: main.leases.leases[lease.id].expires_at >= before + timedelta(minutes=30),
            what="the extension",
        )
        await settle(pilot, lambda: _cell(app, lease.id, "left") != left_before)
        assert _cell(app, lease.id, "left").startswith(("59 min", "1 h"))
        assert (await service.resolve(lease.id)).expires_at >= before + timedelta(minutes=30)

        # Delete with confirmation: the row turns released and the container is gone.
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(
            pilot,
            lambda: main.leases.leases[lease.id].status is LeaseStatus.RELEASED,
            within=20,
            what="the lease to be released",
        )
        with pytest.raises(aiodocker.DockerError) as gone:
            await docker.containers.container(lease.docker_id).show()
        assert gone.value.status == 404
        assert _cell(app, lease.id, "status") == "released"
        await pilot.press("q")


async def test_validation_error_blocks_provisioning(
    settings: Settings, service: LeaseService
) -> None:
    app = create_app(settings, service=service, reaper=False, all_users=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.click("#duration")
        await pilot.press(*"9h")
        await settle(pilot, lambda: "allowed 1s to 8h" in app.main.form.error)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main.leases.leases == {}
        assert await service.list(all_users=True) == []


async def test_a_lease_made_by_the_cli_appears_within_a_second(
    settings: Settings, service: LeaseService, processes: Process
) -> None:
    app = create_app(settings, service=service, reaper=False, all_users=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await settle(pilot, lambda: app.main.status.reapers is not None)
        seen: dict[str, datetime] = {}

        def shown() -> bool:
            for lease in app.main.leases.table.shown.values():
                if lease.name == "from-cli":
                    seen.setdefault(lease.id, utcnow())
            return bool(seen)

        cli = await processes.start(
            "provision", "busybox", "--duration", "10m", "--name", "from-cli", "--wait", "--json"
        )
        await settle(pilot, shown, within=30, what="the CLI's lease in the table")  # no key
        ((lease_id, appeared),) = seen.items()
        created = await _event_at(service, lease_id, EventType.CREATED)
        assert (appeared - created).total_seconds() < 1.0, (created, appeared)

        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        assert json.loads(out)["id"] == lease_id
        await settle(pilot, lambda: _cell(app, lease_id, "status") == "running", within=10)
        assert _cell(app, lease_id, "lease").startswith("from-cli")
        # "a" shows only mine (alice's): the CLI's user's lease leaves the table, and comes back.
        await pilot.press("a")
        await settle(pilot, lambda: app.main.leases.table.row_count == 0)
        await pilot.press("a")
        await settle(pilot, lambda: app.main.leases.table.row_count == 1)


async def test_a_reap_by_another_process_shows_within_a_second(
    settings: Settings, service: LeaseService, processes: Process, docker: aiodocker.Docker
) -> None:
    app = create_app(settings, service=service, reaper=False, all_users=True)
    toasts = _record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await processes.start("--reaper")  # the headless reaper, as the box's service runs it
        await settle(
            pilot,
            lambda: "reaper alive" in app.main.status.reaper_text,
            within=20,
            what="the headless reaper's heartbeat",
        )
        lease = await service.provision(ProvisionRequest("busybox", "3s", name="brief"))
        assert lease.docker_id
        expired: dict[str, datetime] = {}

        def turned_expired() -> bool:
            current = app.main.leases.table.shown.get(lease.id)
            if current is not None and current.status is LeaseStatus.EXPIRED:
                expired.setdefault(lease.id, utcnow())
            return bool(expired)

        await settle(pilot, turned_expired, within=20, what="the row to turn expired")
        at = await _event_at(service, lease.id, EventType.EXPIRED)
        assert (expired[lease.id] - at).total_seconds() < 1.0, (at, expired[lease.id])
        await settle(pilot, lambda: _cell(app, lease.id, "status") == "expired")
        await settle(pilot, lambda: any("brief reaped" in t for t in toasts))
        with pytest.raises(aiodocker.DockerError):
            await docker.containers.container(lease.docker_id).show()


async def test_provision_failure_is_a_toast_with_the_reason(
    settings: Settings, service: LeaseService
) -> None:
    app = create_app(settings, service=service, reaper=False, all_users=True)
    toasts = _record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        form = app.main.form
        # The keyboard only: open the picker, the second image (offline), a name, enter.
        await pilot.press("n")
        await settle(pilot, lambda: form.query_one("#image", Select).has_focus)
        await pilot.press("enter", "down", "enter")
        await settle(pilot, lambda: form.image == "offline")
        await pilot.click("#name")
        await pilot.press(*"nope", "enter")
        await settle(
            pilot,
            lambda: any("provision failed: " in t for t in toasts),
            within=60,
            what=f"the provision failed toast (toasts: {toasts})",
        )
        (toast,) = [t for t in toasts if "provision failed: " in t]  # one toast, not two
        assert toast.startswith("nope: provision failed: image registry.invalid/"), toast
        assert "could not be pulled" in toast, toast
        assert "Traceback" not in toast
        failed = _by_name(app, "nope")
        assert failed is not None
        await settle(pilot, lambda: _cell(app, failed.id, "status") == "failed")
        assert not any("could not be reaped" in t for t in toasts)
        assert not form.has_class("-pulling")
        assert app.is_running


# The same registry image as the `pull_image` tests, pulled and dropped: one after another.
@pytest.mark.xdist_group("real-pull")
async def test_pull_progress_from_a_real_registry(
    settings: Settings, service: LeaseService, docker: aiodocker.Docker
) -> None:
    registry = os.environ.get("CONTAINERLEASE_TEST_REGISTRY")
    if not registry:
        pytest.skip("CONTAINERLEASE_TEST_REGISTRY is not set (scripts/test starts a registry)")
    ref = f"{registry}/containerlease-test:busybox"
    with contextlib.suppress(aiodocker.DockerError):
        await docker.images.delete(ref, force=True)
    assert not await service.engine.image_present(ref)
    spec = settings.images["busybox"].model_copy(
        update={"ref": ref, "description": "busybox from the test registry"}
    )
    settings = settings.model_copy(update={"images": {"pulled": spec, **settings.images}})
    service.settings = settings
    app = create_app(settings, service=service, reaper=False, all_users=True)
    toasts = _record_toasts(app)
    reports: list[PullProgress] = []
    shown: list[tuple[str, float | None, float]] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _ready(pilot)
            form = app.main.form
            await settle(pilot, lambda: form._present.get("pulled") is False)
            show_progress = form.show_progress

            def record(progress: PullProgress) -> None:
                show_progress(progress)
                reports.append(progress)
                bar = form.query_one("#pull-bar", ProgressBar)
                shown.append((str(form.query_one("#pull-info").render()), bar.total, bar.progress))

            form.show_progress = record  # type: ignore[method-assign]
            await pilot.press("n")
            await settle(pilot, lambda: form.image == "pulled")
            await pilot.click("#name")
            await pilot.press(*"pulled", "enter")
            await settle(
                pilot,
                lambda: (
                    (lease := _by_name(app, "pulled")) is not None
                    and lease.status is LeaseStatus.RUNNING
                ),
                within=60,
                what="the pulled lease to run",
            )
            await settle(pilot, lambda: any("is running" in t for t in toasts))
            assert reports, "no pull progress reached the form"
            assert any(r.total > 0 and r.current > 0 for r in reports)
            assert any(r.layers_total >= 1 for r in reports)
            texts = [text for text, _, _ in shown]
            assert any("layers " in t and "/" in t and "B" in t for t in texts), texts
            assert any(total and progress > 0 for _, total, progress in shown)
            # The pull made the image local: the picker says so without a restart.
            await settle(pilot, lambda: form._present.get("pulled") is True)
            assert not form.has_class("-pulling")
    finally:
        with contextlib.suppress(aiodocker.DockerError):
            await docker.images.delete(ref, force=True)


@pytest.mark.parametrize("reaper", [False, True], ids=["no-reaper", "reaper"])
async def test_the_in_app_reaper_runs_only_when_asked(
    settings: Settings, service: LeaseService, reaper: bool
) -> None:
    app = create_app(settings, service=service, reaper=reaper, all_users=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        status = app.main.status
        if reaper:
            await settle(pilot, lambda: "reaper alive" in status.reaper_text, within=15)
            beats = await service.store.reapers()
            assert [(b.pid, b.mode) for b in beats] == [(os.getpid(), "in-app")]
        else:
            await settle(pilot, lambda: status.reaper_line is not None, within=15)
            await pilot.pause(1.0)  # past the moment a started reaper writes its first beat
            assert await service.store.reapers() == []
            assert status.reaper_text.startswith("no reaper running")
            assert app._reaper_worker is None
        await pilot.press("q")
    assert await service.store.reapers() == []


async def test_in_app_reaper_reaps_and_toasts(
    settings: Settings, service: LeaseService, docker: aiodocker.Docker
) -> None:
    app = create_app(settings, service=service, reaper=True, all_users=True)
    toasts = _record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await settle(pilot, lambda: app.main.status.in_app_reaper is True, what="the reaper")
        lease = await service.provision(ProvisionRequest("busybox", "2s", name="short"))
        assert lease.docker_id
        await settle(
            pilot,
            lambda: (
                lease.id in app.main.leases.leases
                and app.main.leases.leases[lease.id].status is LeaseStatus.EXPIRED
            ),
            within=20,
            what="the reaper to expire the lease",
        )
        await settle(pilot, lambda: any("short reaped" in t for t in toasts))
        with pytest.raises(aiodocker.DockerError):
            await docker.containers.container(lease.docker_id).show()
        await settle(pilot, lambda: (app.main.status.reapers or 0) >= 1, within=15)
        await pilot.press("q")
    assert not app.is_running
    assert await service.store.reapers() == []  # its heartbeat went with it
