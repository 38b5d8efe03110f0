"""The I/O workers: the service opened, events, health, containers, the reaper, the actions."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from textual import work

from containerlease_tui.backoff import Backoff
from containerlease_tui.leases import LeaseError, ProvisionFailed
from containerlease_tui.models import Lease
from containerlease_tui.tui.messages import (
    ActionDone,
    ContainersChecked,
    HealthChanged,
    ImagesLoaded,
    LeasesLoaded,
    ProvisionFinished,
    ProvisionStatus,
    PullProgressed,
    ReaperStateChanged,
    RedisLost,
    ServiceFailed,
    ServiceReady,
)
from containerlease_tui.tui.parts.base import AppBase, short

if TYPE_CHECKING:
    from containerlease_tui.leases import (
        ProvisionRequest,
        PullProgress,
        ReaperStatus,
    )
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

EVENT_BLOCK_MS = 2000
"""How long one read of the event stream waits (the store caps it below its socket timeout)."""
HEALTH_INTERVAL = 5.0
"""Seconds between health checks while everything is up."""
CONTAINER_POLL = 0.5
"""Seconds between two readings of the containers' real state (one engine listing each)."""


class WorkersPart(AppBase):
    """The workers: all the app's I/O. They never touch the UI; they only post messages."""

    @work(group="connect", exclusive=True, exit_on_error=False)
    async def _connect(self) -> None:
        """Open the service (retrying with backoff); never in compose."""
        from containerlease_tui.service_api import connect_service

        backoff = Backoff()
        while True:
            try:
                # The daemon's client when it serves this machine, else direct (never blocks).
                self.post_message(ServiceReady(await connect_service(self.settings, self._user)))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                self.post_message(ServiceFailed(short(exc)))
                await asyncio.sleep(delay)

    @work(group="events", exclusive=True, exit_on_error=False)
    async def _follow_events(self, service: LeaseService) -> None:
        """Read the event stream and reload the leases whenever it moves."""
        backoff = Backoff()
        after: str | None = None
        while True:
            try:
                if after is None:
                    after = await service.last_event_id()
                    leases = await service.list(all_users=True)
                    self.post_message(LeasesLoaded(leases))
                    backoff.reset()
                batch = await service.events(after=after, block_ms=EVENT_BLOCK_MS)
                moved, after = batch.cursor != after, batch.cursor
                if moved:
                    leases = await service.list(all_users=True)
                    self.post_message(LeasesLoaded(leases, list(batch.events)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                after = None
                delay = backoff.next()
                self.post_message(RedisLost(short(exc)))
                await asyncio.sleep(delay)

    @work(group="health", exclusive=True, exit_on_error=False)
    async def _watch_health(self, service: LeaseService) -> None:
        """Ping Redis and Docker, say which reapers live; retry sooner while something is down."""
        backoff = Backoff(base=1.0, cap=HEALTH_INTERVAL * 3)
        while True:
            try:
                report = await service.health()
                reapers: ReaperStatus | None = None
                if report.redis_ok:
                    with contextlib.suppress(LeaseError):
                        reapers = await service.reaper_status()
                self.post_message(
                    HealthChanged(
                        report.redis_ok,
                        report.redis_detail,
                        report.docker_ok,
                        report.docker_detail,
                        reapers,
                    )
                )
                healthy = report.redis_ok and report.docker_ok
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(HealthChanged(False, short(exc), False, short(exc)))
                healthy = False
            if healthy:
                backoff.reset()
                await asyncio.sleep(HEALTH_INTERVAL)
            else:
                await asyncio.sleep(backoff.next())

    @work(group="containers", exclusive=True, exit_on_error=False)
    async def _watch_containers(self, service: LeaseService) -> None:
        """Follow what each lease's container really does (it may exit, be OOM-killed, be
        stopped or removed behind our back): the record keeps saying ``running``."""
        while True:
            leases = list(self.main.leases.leases.values()) if not self.quitting else []
            try:
                states = await service.container_states(leases)
            except asyncio.CancelledError:
                raise
            except Exception:
                states = None  # the health check reports Docker being down
            if states is not None:
                self.post_message(ContainersChecked(states))
            await asyncio.sleep(CONTAINER_POLL)

    @work(group="images", exclusive=True, exit_on_error=False)
    async def _load_images(self, service: LeaseService) -> None:
        """Which catalog images the engine has locally (for the picker)."""
        try:
            rows = await service.images()
        except Exception:
            return  # the picker keeps "?" for presence; the health check reports Docker
        self.post_message(ImagesLoaded(rows))

    @work(group="reaper", exclusive=True, exit_on_error=False)
    async def _run_reaper(self, service: LeaseService) -> None:
        """The in-app reaper, until the app quits; restarted with backoff if it fails."""
        backoff = Backoff(base=1.0, cap=30.0)
        while not self._reaper_stop.is_set():
            try:
                self.post_message(ReaperStateChanged(True))
                await service.run_reaper(self._reaper_stop)
                if self._reaper_stop.is_set():
                    break
                raise RuntimeError("the reaper stopped by itself")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(ReaperStateChanged(False, short(exc)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reaper_stop.wait(), backoff.next())
        self.post_message(ReaperStateChanged(False))

    @work(group="provision", exit_on_error=False)
    async def _provision(self, service: LeaseService, request: ProvisionRequest) -> None:
        def progress(report: PullProgress) -> None:
            self.post_message(PullProgressed(report))

        def status(lease: Lease) -> None:
            self.post_message(ProvisionStatus(lease))

        try:
            lease = await service.provision(request, on_progress=progress, on_status=status)
        except asyncio.CancelledError:
            raise
        except ProvisionFailed as exc:
            self.post_message(ProvisionFinished(exc.lease, exc.reason))
            return
        except Exception as exc:  # refused before anything was made (input, quota, Redis)
            self.post_message(ProvisionFinished(None, short(exc)))
            return
        self.post_message(ProvisionFinished(lease))

    @work(group="actions", exit_on_error=False)
    async def _act(self, service: LeaseService, what: str, lease: Lease, arg: str = "") -> None:
        """Extend, delete or restart a lease; the outcome is a toast."""
        try:
            if what == "extend":
                done = await service.extend(lease.id, arg)
                text = f"Extended {done.name} by {arg}: expires {done.expires_at:%H:%M:%S} UTC"
            elif what == "delete":
                done = await service.release(lease.id)
                text = f"Deleted {done.name}: its container is gone"
            elif what == "restart":
                done = await service.restart(lease.id)
                text = f"Restarted {done.name}"
            elif what == "stop":
                done = await service.stop(lease.id)
                text = f"Stopped {done.name}: its lease and its cost go on"
            elif what == "start":
                done = await service.start(lease.id)
                text = f"Started {done.name}"
            else:  # pragma: no cover - programming error
                raise ValueError(f"unknown action {what}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(ActionDone(f"Could not {what} {lease.name}: {short(exc)}", "error"))
            return
        self.post_message(ActionDone(text, "information", done))
