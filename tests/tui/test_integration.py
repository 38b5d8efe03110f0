"""The app driven by Pilot against the real Docker engine and redis-server (scripts/test).

Every wait is on a condition with a timeout (``settle``), never a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiodocker
import pytest
from textual.widgets import Select

from containerlease_tui.config import Settings
from containerlease_tui.leases import LeaseService, ProvisionRequest
from containerlease_tui.models import Lease, LeaseStatus
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen

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
    app = create_app(settings, service=service, reaper=False)
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
        assert any("is running" in t for t in toasts)

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
    app = create_app(settings, service=service, reaper=False)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.click("#duration")
        await pilot.press(*"9h")
        await settle(pilot, lambda: "allowed 1s to 8h" in app.main.form.error)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main.leases.leases == {}
        assert await service.list(all_users=True) == []


async def test_another_instance_appears_without_a_key_press(
    settings: Settings, service: LeaseService, other: LeaseService
) -> None:
    app = create_app(settings, service=service, reaper=False)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await settle(pilot, lambda: app.main.status.reapers is not None)
        lease = await other.provision(ProvisionRequest("busybox", "20m", name="bobs"))
        started = time.monotonic()
        await settle(
            pilot, lambda: lease.id in app.main.leases.leases, within=5, what="bob's lease"
        )
        assert time.monotonic() - started < 2.0, "the event stream should deliver it at once"
        await settle(pilot, lambda: _cell(app, lease.id, "status") == "running")
        assert _cell(app, lease.id, "lease").startswith("bobs")
        # "a" shows only mine: bob's lease leaves the table, and comes back.
        await pilot.press("a")
        await settle(pilot, lambda: app.main.leases.table.row_count == 0)
        await pilot.press("a")
        await settle(pilot, lambda: app.main.leases.table.row_count == 1)


async def test_in_app_reaper_reaps_and_toasts(
    settings: Settings, service: LeaseService, docker: aiodocker.Docker
) -> None:
    app = create_app(settings, service=service, reaper=True)
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
