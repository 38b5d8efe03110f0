"""The daemon's routes and its client, in one process over a real unix socket, with the
in-memory store and runtime: the same answers as direct mode, typed errors, a forged owner
ignored, progress streamed, nothing half-made when a client goes away mid-provision."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from containerlease_tui.daemon.client import RemoteLeaseService
from containerlease_tui.daemon.routes import Backend, application
from containerlease_tui.daemon.sockets import UnsafeSocket, bind, prepare
from containerlease_tui.leases import Forbidden, InvalidInput, NotFound, ProvisionRequest
from containerlease_tui.models import LeaseStatus
from tests.contract.test_fakes_end_to_end import REPORT, _settings
from tests.fakes.memory_store import MemoryStore
from tests.fakes.runtime import FakeRuntime

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[RemoteLeaseService, MemoryStore, Path]]:
    settings = _settings()
    store = MemoryStore(settings)
    runtime = FakeRuntime(registry={"busybox:e2e": [REPORT]})
    path = tmp_path / "run" / "api.sock"
    tmp_path.chmod(0o755)
    sock = bind(path, 0o660, None)
    runner = web.AppRunner(
        application(Backend(settings, store, runtime, logging.getLogger("t"))), access_log=None
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    client = await RemoteLeaseService.connect(settings, path)
    try:
        yield client, store, path
    finally:
        await client.close()
        await runner.cleanup()


async def test_the_client_gets_what_direct_mode_would(
    served: tuple[RemoteLeaseService, MemoryStore, Path],
) -> None:
    client, store, _ = served
    assert client.user == ME and client.settings.limits.daily_budget_hours == 10
    progress: list[object] = []
    statuses: list[LeaseStatus] = []
    lease = await client.provision(
        ProvisionRequest("box", "2h", name="web"),
        on_progress=progress.append,
        on_status=lambda x: statuses.append(x.status),
    )
    assert lease.owner == ME and lease.status is LeaseStatus.RUNNING
    assert statuses[0] is LeaseStatus.PENDING and statuses[-1] is LeaseStatus.RUNNING
    assert progress == [REPORT]
    assert [x.id for x in await client.list()] == [lease.id]
    assert (await client.resolve("web")).id == lease.id
    report = await client.status(lease.id)
    assert report.container is not None and report.container.running
    extended = await client.extend(lease.id, "30m")
    assert len(extended.extensions) == 1
    assert (await client.images())[0].name == "box"
    assert (await client.health()).redis_ok
    batch = await client.events("0", block_ms=None)
    assert lease.id in {e.lease for e in batch.events}
    with pytest.raises(NotFound):
        await client.resolve("nosuchlease")
    with pytest.raises(InvalidInput) as bad:
        await client.submit(ProvisionRequest("box", "99h"))
    assert bad.value.field == "duration"
    assert (await client.release(lease.id)).status is LeaseStatus.RELEASED
    assert (await store.get(lease.id)) is not None


async def test_refusals_and_a_forged_owner(
    served: tuple[RemoteLeaseService, MemoryStore, Path],
) -> None:
    client, store, path = served
    theirs = await client.submit(ProvisionRequest("box", "1h"))
    # Someone else's lease (written straight to the store): refused with the policy's line.
    other = theirs.model_copy(update={"id": "other1", "owner": "somebody", "name": "x2"})
    await store.insert(other, max_per_user=100, max_total=100, budget_hours=None, detail="")
    with pytest.raises(Forbidden, match="belongs to somebody"):
        await client.release("other1")
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as raw:
        async with raw.post(
            "http://x/v1/leases",
            json={"image": "box", "owner": "somebody"},
            headers={"X-User": "somebody"},
        ) as made:
            assert made.status == 201
            assert (await made.json())["owner"] == ME
        async with raw.get("http://x/v1/nope") as missing:
            body = await missing.json()
            assert missing.status == 404 and body["error_type"] == "NotFound"
            assert set(body) == {"error", "error_type", "message", "details", "timestamp"}
        async with raw.post("http://x/v1/leases", data=b"x" * 100_000) as big:
            assert big.status == 413 and (await big.json())["error"] is True
        async with raw.post("http://x/v1/leases", data=b"{bad") as bad:
            assert bad.status == 400
            assert json.loads(await bad.text())["error_type"] == "InvalidInput"


async def test_a_client_gone_mid_provision_leaves_nothing_half_made(
    served: tuple[RemoteLeaseService, MemoryStore, Path],
) -> None:
    client, store, path = served
    lease = await client.submit(ProvisionRequest("box", "1h"))
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as raw:
        response = await raw.post(f"http://x/v1/leases/{lease.id}/complete")
        response.close()  # gone before reading a line
    async with asyncio.timeout(10):  # the provision goes on without the client
        for _ in range(10_000):
            current = await store.get(lease.id)
            if current is not None and current.status in (LeaseStatus.RUNNING, LeaseStatus.FAILED):
                break
            await asyncio.sleep(0.01)
    assert (await client.status(lease.id)).lease.status is LeaseStatus.RUNNING


def test_unsafe_socket_paths(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    with pytest.raises(UnsafeSocket, match="writable by others"):
        prepare(tmp_path / "open" / "a.sock")
    (tmp_path / "real").mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UnsafeSocket, match="symlink"):
        prepare(tmp_path / "link" / "a.sock")
    (tmp_path / "real" / "file.sock").write_text("x")
    with pytest.raises(UnsafeSocket, match="not a socket"):
        prepare(tmp_path / "real" / "file.sock")
    (tmp_path / "real" / "s.sock").symlink_to("/dev/null")
    with pytest.raises(UnsafeSocket, match="symlink"):
        prepare(tmp_path / "real" / "s.sock")
    made = bind(tmp_path / "new" / "api.sock", 0o660, None)
    try:
        assert oct((tmp_path / "new" / "api.sock").stat().st_mode & 0o777) == oct(0o660)
        with pytest.raises(UnsafeSocket, match="already answers"):
            prepare(tmp_path / "new" / "api.sock")
    finally:
        made.close()


async def test_garbage_and_a_thousand_quick_connects_leave_it_serving(
    served: tuple[RemoteLeaseService, MemoryStore, Path],
) -> None:
    client, _, path = served
    payloads = [
        b"",
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET /v1/leases HTTP/1.1\r\n",  # truncated
        b"GET /v1/leases HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",  # short body
    ]
    for i in range(1000):
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(payloads[i % len(payloads)])
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert [x.status for x in await client.list()] == []
    assert (await client.health()).docker_ok


async def test_every_service_call_the_shells_make_has_a_route(
    served: tuple[RemoteLeaseService, MemoryStore, Path],
) -> None:
    """Views, reports, container states and volumes: the client's answer is direct mode's."""
    from containerlease_tui.activity import EventFilter
    from containerlease_tui.leases import LeaseService

    client, store, _ = served
    lease = await client.provision(ProvisionRequest("box", "2h", name="web"))
    direct = LeaseService(client.settings, store, FakeRuntime(), user=client.user, admin=False)
    assert (await client.container_state(lease)) is not None
    states = await client.container_states([lease])
    assert set(states) == {lease.id} and states[lease.id].running
    await client.settled(lease)  # its route answers (None: nothing to wait for)
    assert isinstance(await client.last_lines(lease, 5), list)
    await client.check_shell(lease)
    history = await client.event_log(EventFilter(lease=lease.id), limit=50)
    assert history.events and {e.lease for e in history.events} == {lease.id}
    assert client.shown(history.events) == direct.shown(history.events)
    assert (await client.spend()).total == (await direct.spend()).total
    assert (await client.capacity()).active == (await direct.capacity()).active == 1
    assert (await client.reaper_overview()).upcoming == (await direct.reaper_overview()).upcoming
    assert (await client.outlook()) is not None
    assert await client.volumes() == []
    with pytest.raises(InvalidInput, match="not available through the daemon"):
        await client.copy_in(lease.id, Path("/etc/hostname"), "/tmp/")
    listed = await client.list()
    assert [x.id for x in listed] == [lease.id] and listed.skipped == []
