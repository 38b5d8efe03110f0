"""The Runtime contract: what LeaseService and the reaper rely on, held against Docker and the
fake runtime."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import secrets
import tarfile
import time
from collections.abc import Awaitable, Callable

import pytest

from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    ContainerInfo,
    ContainerSpec,
    EngineError,
    ImageUnavailable,
    PullProgress,
)
from containerlease_tui.engine.protocol import Runtime

from .conftest import UNREACHABLE_IMAGE

# Says hello, then waits for TERM (and exits 0 on it).
SERVE = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; echo hello; echo world; while true; do sleep 1; done",
]
# Says something on each stream and exits 3 at once.
QUICK = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]

Make = Callable[..., ContainerSpec]


@pytest.fixture
def make_spec(image: str, instance: str) -> Make:
    def make(
        *,
        cmd: list[str] | None = None,
        lease: str | None = None,
        name: str | None = None,
        inst: str | None = None,
    ) -> ContainerSpec:
        lease_id = lease or secrets.token_hex(4)
        return ContainerSpec(
            name=name or f"{instance}-{lease_id}",
            image_ref=image,
            cmd=cmd or SERVE,
            env={"GREETING": "hi"},
            labels={
                LABEL_LEASE: lease_id,
                LABEL_OWNER: "tester",
                LABEL_EXPIRES: "2030-01-01T00:00:00Z",
                LABEL_INSTANCE: inst or instance,
            },
            cpus=0.5,
            memory=64 * 1024**2,
            pids=64,
            cap_add=[],
            binds=[],
            network="none",
        )

    return make


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def state_of(runtime: Runtime, cid: str) -> ContainerInfo:
    info = await runtime.inspect(cid)
    assert info is not None
    return info


async def test_ping_and_images(runtime: Runtime, image: str) -> None:
    assert await runtime.ping()
    assert await runtime.image_present(image)
    assert await runtime.image_seen(image)
    await runtime.ensure_image(image)  # local: returns at once
    assert not await runtime.image_present("containerlease-test/absent:never")
    with pytest.raises(ImageUnavailable, match="not a valid image reference"):
        await runtime.image_present("Not A Reference")


async def test_host_info_says_what_the_box_has(runtime: Runtime) -> None:
    host = await runtime.host_info()
    assert host.cpus >= 1
    assert host.memory >= 64 * 1024**2


async def test_a_pull_of_an_unreachable_image_fails(runtime: Runtime) -> None:
    progress: list[PullProgress] = []
    with pytest.raises(ImageUnavailable) as failed:
        await runtime.ensure_image(UNREACHABLE_IMAGE, progress.append)
    assert str(failed.value).startswith(
        f"image {UNREACHABLE_IMAGE} is not available locally and could not be pulled: "
    )
    assert "\n" not in str(failed.value)
    assert not await runtime.image_present(UNREACHABLE_IMAGE)


async def test_create_start_inspect_stop_remove(runtime: Runtime, make_spec: Make) -> None:
    spec = make_spec()
    cid = await runtime.create(spec)
    assert len(cid) == 64
    created = await state_of(runtime, cid)
    assert (created.state, created.running, created.name) == ("created", False, spec.name)
    assert created.labels[LABEL_LEASE] == spec.labels[LABEL_LEASE]
    assert created.started_at is None and created.created_at is not None
    assert created.exit_code is None
    with pytest.raises(EngineError, match=f"a container named {spec.name} already exists"):
        await runtime.create(make_spec(name=spec.name))

    await runtime.start(cid)
    running = await state_of(runtime, cid)
    assert (running.state, running.running, running.exit_code) == ("running", True, None)
    assert running.started_at is not None
    await runtime.start(cid)  # already running: a no-op
    stats = await runtime.stats(cid)
    assert stats.memory_limit == 64 * 1024**2

    await runtime.stop(cid, timeout=5)
    stopped = await state_of(runtime, cid)
    assert (stopped.state, stopped.running, stopped.exit_code) == ("exited", False, 0)
    await runtime.restart(cid)
    assert (await state_of(runtime, cid)).running

    assert await runtime.remove(cid)
    assert await runtime.inspect(cid) is None
    assert await runtime.remove(cid)  # already gone counts as removed
    with pytest.raises(EngineError, match="does not exist"):
        await runtime.start(cid)


async def test_create_of_an_absent_image_is_image_unavailable(
    runtime: Runtime, make_spec: Make
) -> None:
    spec = make_spec()
    absent = dataclasses.replace(spec, image_ref="containerlease-test/absent:never")
    with pytest.raises(ImageUnavailable, match="is not available locally"):
        await runtime.create(absent)


async def test_a_command_that_ends_leaves_an_exited_container(
    runtime: Runtime, make_spec: Make
) -> None:
    cid = await runtime.create(make_spec(cmd=QUICK))
    await runtime.start(cid)

    async def exited() -> bool:
        return (await state_of(runtime, cid)).state == "exited"

    await until(exited, what="the container to exit")
    info = await state_of(runtime, cid)
    assert (info.running, info.exit_code) == (False, 3)
    listed = {x.id: x for x in await runtime.list_leased()}
    assert listed[cid].exit_code == 3 and listed[cid].state == "exited"
    lines = [line async for line in runtime.logs(cid, follow=False)]
    assert sorted(lines) == ["err", "out"]  # both streams, no trailing newline
    await runtime.remove(cid)


async def test_list_leased_by_labels(runtime: Runtime, make_spec: Make, instance: str) -> None:
    mine = await runtime.create(make_spec(lease="l1"))
    other = await runtime.create(make_spec(lease="l2", inst=f"{instance}x"))
    await runtime.start(mine)
    try:
        ours = await runtime.list_leased(instance)
        assert [x.id for x in ours] == [mine]
        (info,) = ours
        assert info.labels[LABEL_LEASE] == "l1" and info.labels[LABEL_INSTANCE] == instance
        assert info.state == "running" and info.running and info.started_at is None
        assert info.created_at is not None and info.name == make_spec(lease="l1").name
        every = {x.id: x for x in await runtime.list_leased()}
        assert {mine, other} <= set(every)
        assert every[other].state == "created" and not every[other].running
    finally:
        await runtime.remove(mine)
        await runtime.remove(other)
    assert [x.id for x in await runtime.list_leased(instance)] == []


async def test_logs_tail_and_follow_until_the_container_stops(
    runtime: Runtime, make_spec: Make
) -> None:
    cid = await runtime.create(make_spec())
    await runtime.start(cid)

    async def said_hello() -> bool:
        return [x async for x in runtime.logs(cid, follow=False)] == ["hello", "world"]

    await until(said_hello, what="the greeting")
    assert [x async for x in runtime.logs(cid, follow=False, tail=1)] == ["world"]
    assert [x async for x in runtime.logs(cid, follow=False, tail=0)] == []

    seen: list[str] = []

    async def read() -> None:
        async for line in runtime.logs(cid, follow=True):
            seen.append(line)

    follower = asyncio.create_task(read())
    await asyncio.sleep(0.5)
    assert not follower.done()  # a followed log of a running container stays open
    assert seen == ["hello", "world"]
    await runtime.stop(cid)
    await asyncio.wait_for(follower, 15)  # ... and ends once it stops
    assert seen == ["hello", "world"]
    await runtime.remove(cid)
    with pytest.raises(EngineError, match="does not exist"):
        [x async for x in runtime.logs(cid, follow=False)]


async def test_exec_keeps_the_streams_apart_and_reports_the_exit_code(
    runtime: Runtime, make_spec: Make
) -> None:
    cid = await runtime.create(make_spec())
    with pytest.raises(EngineError, match="is not running"):
        await runtime.exec(cid, ["echo", "hi"])
    await runtime.start(cid)
    result = await runtime.exec(cid, QUICK)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert not result.truncated
    plain = await runtime.exec(cid, ["echo", "hi", "there"])
    assert (plain.exit_code, plain.stdout, plain.stderr) == (0, b"hi there\n", b"")
    await runtime.remove(cid)
    with pytest.raises(EngineError, match="does not exist"):
        await runtime.exec(cid, ["echo", "hi"])


# --- named volumes and archives (issue 17) ------------------------------------------------------


async def test_named_volumes_create_find_list_and_remove(
    runtime: Runtime, make_spec: Make, instance: str
) -> None:
    name = f"{instance}-vol"
    labels = {"containerlease.volume": "work", LABEL_INSTANCE: instance, LABEL_OWNER: "tester"}
    try:
        made = await runtime.ensure_volume(name, labels)
        assert made.name == name and made.labels == labels
        # Again: the volume as it is, whatever labels are asked for now.
        again = await runtime.ensure_volume(name, {"other": "x"})
        assert again.labels == labels
        listed = await runtime.list_volumes(
            [f"{LABEL_INSTANCE}={instance}", "containerlease.volume"]
        )
        assert [v.name for v in listed] == [name] and listed[0].users == ()
        assert await runtime.list_volumes([f"{LABEL_INSTANCE}={instance}-other"]) == []

        cid = await runtime.create(dataclasses.replace(make_spec(), volumes={name: "/work"}))
        found = await runtime.inspect_volume(name)
        assert found is not None and found.users == (cid,)
        with pytest.raises(EngineError, match=f"volume {name} is in use"):
            await runtime.remove_volume(name)
        assert await runtime.remove(cid)
        assert await runtime.remove_volume(name)
        assert await runtime.inspect_volume(name) is None
        assert not await runtime.remove_volume(name)
    finally:
        with contextlib.suppress(EngineError):
            await runtime.remove_volume(name)


def _tar(*files: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize("started", [True, False], ids=["running", "created"])
async def test_archives_in_and_out(runtime: Runtime, make_spec: Make, started: bool) -> None:
    cid = await runtime.create(make_spec())
    if started:
        await runtime.start(cid)
    await runtime.put_archive(cid, "/tmp", _tar(("a.txt", b"alpha"), ("b.txt", b"beta")))
    sizes: list[int] = []
    data = await runtime.get_archive(cid, "/tmp/a.txt", limit=1 << 20, on_progress=sizes.append)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        member = tar.getmember("a.txt")
        handle = tar.extractfile(member)
        assert handle is not None and handle.read() == b"alpha"
    assert sizes and sizes[-1] == len(data)
    with pytest.raises(EngineError, match="larger than the copy limit"):
        await runtime.get_archive(cid, "/tmp/a.txt", limit=10)
    with pytest.raises(EngineError, match="does not exist in container"):
        await runtime.get_archive(cid, "/tmp/none.txt", limit=1 << 20)
    with pytest.raises(EngineError, match="does not exist in container"):
        await runtime.put_archive(cid, "/no/such/folder", _tar(("c.txt", b"c")))
    assert await runtime.remove(cid)


async def test_ports_are_published_where_asked(
    runtime: Runtime, make_spec: Make, request: pytest.FixtureRequest
) -> None:
    from tests.fakes import FakeRuntime

    if not isinstance(runtime, FakeRuntime):
        # The private engine runs with --bridge=none: ports need a bridge network of the test's.
        pytest.skip("published ports against the engine: tests/integration/test_lifecycle.py")
    cid = await runtime.create(dataclasses.replace(make_spec(), ports=["8080/tcp"]))
    assert (await state_of(runtime, cid)).ports == {}
    await runtime.start(cid)
    where = (await state_of(runtime, cid)).ports["8080/tcp"]
    assert where.startswith("127.0.0.1:") and where.rsplit(":", 1)[1].isdigit()
    await runtime.stop(cid)
    assert (await state_of(runtime, cid)).ports == {}
    assert await runtime.remove(cid)
