"""Degraded, not dead, with the real services: Redis or Docker goes away under the running app,
the banner says so, the keys keep working, and when the service is back the app recovers by
itself (banner gone, table current) without a key press.

Redis is a private ``redis-server`` started by the test on a free loopback port (so it can be
killed and restarted on the same port); Docker is the real private engine, reached through a
small unix-socket proxy the test can stop and start. Every wait is a condition with a timeout.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from containerlease_tui.config import Settings
from containerlease_tui.leases import LeaseService, ProvisionRequest
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.screens import HelpScreen
from tests.redis_server import RedisServer

from .helpers import settle

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("cleanup_containers"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

SIZE = (140, 40)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    yield server
    server.kill()


class UnixProxy:
    """Forwards a unix socket to the engine's; ``stop`` refuses new connections and cuts the
    open ones, as a dead daemon would."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._handle, path=str(self.path))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.writers -= {writer, up_writer}


@pytest.fixture
async def docker_proxy(tmp_path: Path, docker_url: str) -> AsyncIterator[UnixProxy]:
    if not docker_url.startswith("unix://"):
        pytest.skip("the Docker proxy needs the engine on a unix socket")
    proxy = UnixProxy(tmp_path / "docker-proxy.sock", docker_url.removeprefix("unix://"))
    await proxy.start()
    yield proxy
    await proxy.stop()


def _with(
    settings: Settings, *, redis_url: str | None = None, docker_url: str | None = None
) -> Any:
    update: dict[str, Any] = {}
    if redis_url is not None:
        update["redis"] = settings.redis.model_copy(
            update={"url": redis_url, "socket_timeout": 1.0}
        )
    if docker_url is not None:
        update["docker"] = settings.docker.model_copy(update={"url": docker_url, "timeout": 3.0})
    return settings.model_copy(update=update)


def _banner(app: ContainerLeaseApp) -> str:
    banner = app.main.query_one("#banner")
    return str(banner.render()) if banner.has_class("-visible") else ""


def _names(app: ContainerLeaseApp) -> set[str]:
    return {lease.name for lease in app.main.leases.table.shown.values()}


async def _still_answers_keys(pilot: Pilot[Any]) -> None:
    """The app is up and keyboard-driven while a service is down."""
    app = pilot.app
    assert isinstance(app, ContainerLeaseApp)
    pane = app.main.leases
    start = pane.show_all  # the app opens on the user's own leases (issue 15)
    await pilot.press("a")
    await settle(pilot, lambda: pane.show_all is not start)
    await pilot.press("a")
    await settle(pilot, lambda: pane.show_all is start)
    await pilot.press("question_mark")
    await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.press("escape")
    await settle(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_redis_goes_down_and_comes_back(
    settings: Settings, private_redis: RedisServer
) -> None:
    await private_redis.start()
    settings = _with(settings, redis_url=private_redis.url)
    service = LeaseService.open(settings, user="alice")
    other = LeaseService.open(settings, user="bob")
    try:
        await service.submit(ProvisionRequest("busybox", "30m", name="before"))
        app = create_app(settings, service=service, reaper=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: "before" in _names(app), within=15, what="the lease")
            await settle(pilot, lambda: app.main.status.docker_ok is True, within=15)

            private_redis.kill()
            await settle(
                pilot, lambda: "Redis is down" in _banner(app), within=15, what="the banner"
            )
            assert app.main.status.redis_ok is False
            await _still_answers_keys(pilot)
            assert "before" in _names(app)  # what was known stays on screen

            if not app.main.leases.show_all:  # bob's lease below is in everybody's view
                await pilot.press("a")
                await settle(pilot, lambda: app.main.leases.show_all is True)
            await private_redis.start()  # same port, same append-only file
            # Written as soon as Redis answers, whether or not the app has reconnected yet.
            await other.submit(ProvisionRequest("busybox", "30m", name="after"))
            await settle(
                pilot,
                lambda: _banner(app) == "" and {"before", "after"} <= _names(app),
                within=30,
                what="the banner to clear and the table to refill by itself",
            )
            assert app.main.status.redis_ok is True
            await pilot.press("q")
    finally:
        await other.close()
        await service.close()


@pytest.mark.usefixtures("redis_client")  # drops the test's keys afterwards
async def test_docker_goes_down_and_comes_back(settings: Settings, docker_proxy: UnixProxy) -> None:
    settings = _with(settings, docker_url=f"unix://{docker_proxy.path}")
    service = LeaseService.open(settings, user="alice")
    try:
        app = create_app(settings, service=service, reaper=False)
        async with app.run_test(size=SIZE) as pilot:
            status = app.main.status
            await settle(
                pilot,
                lambda: status.docker_ok is True and status.redis_ok is True,
                within=15,
                what="the app to connect through the proxy",
            )

            await docker_proxy.stop()
            await settle(
                pilot, lambda: "Docker is down" in _banner(app), within=20, what="the banner"
            )
            assert status.docker_ok is False and status.redis_ok is True
            await _still_answers_keys(pilot)

            await docker_proxy.start()
            await settle(
                pilot,
                lambda: _banner(app) == "" and status.docker_ok is True,
                within=30,
                what="the banner to clear by itself",
            )
            await pilot.press("q")
    finally:
        await service.close()
