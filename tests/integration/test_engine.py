"""Engine against the private Docker engine: real containers, no mocks."""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiodocker
import pytest

from containerlease_tui.config import DockerSettings
from containerlease_tui.engine import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    ContainerInfo,
    ContainerSpec,
    Engine,
    EngineError,
    EngineUnavailable,
    ImageUnavailable,
    PullProgress,
)

pytestmark = pytest.mark.integration

MEMORY = 64 * 1024**2
TICK_CMD = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done"]
# Prints numbered lines; the counter lives in the container's filesystem, so it keeps counting
# across restarts and every line is unique.
COUNTER_CMD = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; i=$(cat /tmp/n 2>/dev/null || echo 0); "
    "while true; do i=$((i+1)); echo $i > /tmp/n; echo line$i; sleep 0.2; done",
]


@pytest.fixture
async def engine(docker_url: str) -> AsyncIterator[Engine]:
    eng = Engine(DockerSettings(url=docker_url, timeout=10))
    yield eng
    await eng.close()


@pytest.fixture
def make_spec(test_image: str, key_prefix: str) -> Callable[..., ContainerSpec]:
    counter = iter(range(1000))

    def make(
        *,
        cmd: list[str] | None = None,
        instance: str | None = None,
        lease: str | None = None,
        name: str | None = None,
    ) -> ContainerSpec:
        n = next(counter)
        lease_id = lease or f"l{n}"
        return ContainerSpec(
            name=name or f"{key_prefix}-{lease_id}",
            image_ref=test_image,
            cmd=cmd or TICK_CMD,
            env={"GREETING": "hi there", "EMPTY": ""},
            labels={
                LABEL_LEASE: lease_id,
                LABEL_OWNER: "tester",
                LABEL_EXPIRES: "2030-01-01T00:00:00Z",
                LABEL_INSTANCE: instance or key_prefix,
            },
            cpus=0.5,
            memory=MEMORY,
            pids=64,
            cap_add=["CHOWN", "KILL"],
            binds=[],
            network="none",
        )

    return make


@pytest.fixture
def run_container(
    engine: Engine, make_spec: Callable[..., ContainerSpec], cleanup_containers: list[str]
) -> Callable[..., Awaitable[str]]:
    async def run(*, start: bool = True, **kwargs: object) -> str:
        cid = await engine.create(make_spec(**kwargs))
        cleanup_containers.append(cid)
        if start:
            await engine.start(cid)
        return cid

    return run


async def wait_for_state(
    engine: Engine, cid: str, running: bool, within: float = 10
) -> ContainerInfo:
    deadline = time.monotonic() + within
    while True:
        info = await engine.inspect(cid)
        assert info is not None
        if info.running is running:
            return info
        assert time.monotonic() < deadline, f"container never reached running={running}"
        await asyncio.sleep(0.05)


async def collect(lines: AsyncGenerator[str, None], count: int, within: float = 10) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(within), aclosing(lines):
        async for line in lines:
            got.append(line)
            if len(got) >= count:
                break
    return got


# --- connection ------------------------------------------------------------------------------


async def test_ping_returns_the_engine_version(engine: Engine) -> None:
    version = await engine.ping()
    assert version and version[0].isdigit()


async def test_unreachable_socket_raises_engine_unavailable(tmp_path: Path) -> None:
    eng = Engine(DockerSettings(url=f"unix://{tmp_path}/nonexistent.sock", timeout=5))
    try:
        with pytest.raises(EngineUnavailable) as caught:
            await eng.ping()
        message = str(caught.value)
        assert "Docker engine is unreachable" in message
        assert "nonexistent.sock" in message
        assert "\n" not in message
        with pytest.raises(EngineUnavailable):  # every call, not only ping
            await eng.list_leased()
    finally:
        await eng.close()


async def test_refused_tcp_port_raises_engine_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    eng = Engine(DockerSettings(url=f"tcp://127.0.0.1:{port}", timeout=5))
    try:
        with pytest.raises(EngineUnavailable, match="Docker engine is unreachable"):
            await eng.image_present("anything:1")
    finally:
        await eng.close()


async def test_silent_engine_times_out_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_unix_server(never_answer, path=str(path))
    eng = Engine(DockerSettings(url=f"unix://{path}", timeout=0.5))
    try:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match=r"did not answer within 0\.5s"):
            await eng.ping()
        assert time.monotonic() - started < 5
    finally:
        await eng.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_tls_without_certificates_is_a_clear_error(tmp_path: Path) -> None:
    eng = Engine(
        DockerSettings(url="tcp://127.0.0.1:2376", tls_verify=True, cert_path=tmp_path, timeout=5)
    )
    try:
        with pytest.raises(EngineError, match=r"ca\.pem, cert\.pem and key\.pem") as caught:
            await eng.ping()
        assert not isinstance(caught.value, EngineUnavailable)
    finally:
        await eng.close()


# --- images ----------------------------------------------------------------------------------


async def test_image_present(engine: Engine, test_image: str) -> None:
    assert await engine.image_present(test_image) is True
    assert await engine.image_present("registry.invalid/nope:1") is False


async def test_ensure_image_on_a_local_image_does_not_pull(engine: Engine, test_image: str) -> None:
    seen: list[PullProgress] = []
    started = time.monotonic()
    await engine.ensure_image(test_image, seen.append)
    assert seen == []
    assert time.monotonic() - started < 2


async def test_a_real_pull_reports_layers_and_bytes(engine: Engine, pull_image: str) -> None:
    assert not await engine.image_present(pull_image)
    seen: list[PullProgress] = []
    await engine.ensure_image(pull_image, seen.append)
    assert await engine.image_present(pull_image)
    layers = {p.layer for p in seen if p.layer}
    assert layers, seen
    downloading = [p for p in seen if p.status == "Downloading"]
    assert downloading, [p.status for p in seen]
    assert max(p.total for p in downloading) > 4 << 20  # the 4 MiB payload, compressed or not
    assert any(0 < p.current < p.total for p in downloading)
    last = seen[-1]
    assert last.layers_total == len(layers) and last.layers_done == last.layers_total
    # Per layer the bytes never go back (Docker's own restart at "Extracting"), and the newest
    # report, the one a shell that falls behind keeps, still knows the layer's size.
    newest: dict[str, PullProgress] = {}
    for p in seen:
        if p.layer:
            before = newest.get(p.layer)
            assert before is None or (p.current >= before.current and p.total >= before.total), p
            newest[p.layer] = p
    assert any(p.total > 4 << 20 and p.current == p.total for p in newest.values()), newest


async def test_an_image_seen_present_is_not_looked_up_again_at_once(
    engine: Engine, test_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await engine.image_seen(test_image)

    async def no_lookup(ref: str) -> bool:
        raise AssertionError(f"looked {ref} up again")

    monkeypatch.setattr(engine, "image_present", no_lookup)
    assert await engine.image_seen(test_image)
    with pytest.raises(AssertionError):  # an image never seen is looked up
        await engine.image_seen("containerlease-test:never-seen")


async def test_invalid_image_reference(engine: Engine) -> None:
    with pytest.raises(ImageUnavailable, match="UPPER/case:1 is not a valid image reference"):
        await engine.ensure_image("UPPER/case:1")


async def test_ensure_image_that_cannot_be_pulled(engine: Engine) -> None:
    ref = "registry.invalid/containerlease/nope:1"
    seen: list[PullProgress] = []
    with pytest.raises(ImageUnavailable) as caught:
        await engine.ensure_image(ref, seen.append)
    message = str(caught.value)
    assert message.startswith(f"image {ref} is not available locally and could not be pulled: ")
    assert "\n" not in message
    assert "registry.invalid" in message  # the short reason names what failed
    assert len(message) < 250


# --- containers ------------------------------------------------------------------------------


async def test_create_start_inspect(
    engine: Engine,
    docker: aiodocker.Docker,
    make_spec: Callable[..., ContainerSpec],
    cleanup_containers: list[str],
    key_prefix: str,
) -> None:
    spec = make_spec(lease="abc")
    before = datetime.now(UTC) - timedelta(seconds=5)
    cid = await engine.create(spec)
    cleanup_containers.append(cid)

    created = await engine.inspect(cid)
    assert created is not None
    assert created.state == "created" and not created.running
    assert created.started_at is None and created.exit_code is None

    await engine.start(cid)
    info = await wait_for_state(engine, cid, running=True)
    assert info.id == cid
    assert info.name == spec.name
    assert info.state == "running"
    assert info.health is None
    assert info.labels[LABEL_LEASE] == "abc"
    assert info.labels[LABEL_INSTANCE] == key_prefix
    assert info.created_at is not None and info.created_at.tzinfo is not None
    assert info.started_at is not None and info.started_at.tzinfo is not None
    assert before < info.created_at <= info.started_at < datetime.now(UTC) + timedelta(seconds=5)

    raw = await docker.containers.container(cid).show()
    host = raw["HostConfig"]
    assert host["Memory"] == MEMORY
    assert host["MemorySwap"] == MEMORY
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["Init"] is True
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == ["CHOWN", "KILL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert raw["Config"]["Tty"] is False
    assert raw["Config"]["Cmd"] == TICK_CMD
    assert "GREETING=hi there" in raw["Config"]["Env"]


async def test_create_with_a_taken_name_fails(
    engine: Engine, run_container: Callable[..., Awaitable[str]], key_prefix: str
) -> None:
    await run_container(start=False, name=f"{key_prefix}-taken")
    with pytest.raises(EngineError, match=f"a container named {key_prefix}-taken already exists"):
        await run_container(start=False, name=f"{key_prefix}-taken")


async def test_create_with_a_missing_image_is_image_unavailable(
    engine: Engine, make_spec: Callable[..., ContainerSpec]
) -> None:
    spec = make_spec()
    missing = ContainerSpec(**{**spec.__dict__, "image_ref": "registry.invalid/nope:1"})
    with pytest.raises(ImageUnavailable, match=r"registry\.invalid/nope:1"):
        await engine.create(missing)


async def test_inspect_of_unknown_container_is_none(engine: Engine) -> None:
    assert await engine.inspect("containerlease-no-such-container") is None


async def test_stats(engine: Engine, run_container: Callable[..., Awaitable[str]]) -> None:
    cid = await run_container()
    await wait_for_state(engine, cid, running=True)
    stats = await engine.stats(cid)
    assert 0.0 <= stats.cpu_percent <= 100.0 * (os.cpu_count() or 1)
    assert 0 < stats.memory_usage < MEMORY
    assert stats.memory_limit == MEMORY


async def test_stop_start_restart(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container()
    first = await wait_for_state(engine, cid, running=True)

    started = time.monotonic()
    await engine.stop(cid)
    assert time.monotonic() - started < 5  # the TERM trap exits at once
    stopped = await wait_for_state(engine, cid, running=False)
    assert stopped.state == "exited" and stopped.exit_code == 0

    await engine.stop(cid)  # stopping a stopped container is fine
    await engine.start(cid)
    again = await wait_for_state(engine, cid, running=True)
    assert again.exit_code is None

    await engine.restart(cid)
    restarted = await wait_for_state(engine, cid, running=True)
    assert first.started_at and again.started_at and restarted.started_at
    assert first.started_at < again.started_at < restarted.started_at


async def test_operations_on_a_missing_container_raise_engine_error(engine: Engine) -> None:
    for call in (engine.start, engine.stop, engine.restart, engine.stats):
        with pytest.raises(EngineError) as caught:
            await call("containerlease-no-such-container")
        assert not isinstance(caught.value, EngineUnavailable)
        assert "containerlease-no-such-container" in str(caught.value)


async def test_remove_is_idempotent(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container()
    assert await engine.remove(cid) is True
    assert await engine.inspect(cid) is None
    assert await engine.remove(cid) is True
    assert await engine.remove("0" * 64) is True


async def test_concurrent_removals_all_succeed(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container()
    results = await asyncio.gather(*(engine.remove(cid) for _ in range(4)))
    assert results == [True] * 4
    assert await engine.inspect(cid) is None


async def test_list_leased_filters_by_instance(
    engine: Engine, run_container: Callable[..., Awaitable[str]], key_prefix: str
) -> None:
    mine = await run_container(lease="mine")
    stopped = await run_container(start=False, lease="idle")
    other_instance = f"{key_prefix}x"
    theirs = await run_container(start=False, lease="theirs", instance=other_instance)

    by_id = {info.id: info for info in await engine.list_leased(key_prefix)}
    assert set(by_id) == {mine, stopped}
    assert by_id[mine].labels[LABEL_LEASE] == "mine"
    assert by_id[mine].running and by_id[mine].state == "running"
    assert by_id[mine].name == f"{key_prefix}-mine"
    created = by_id[mine].created_at
    assert created is not None and created.tzinfo is not None
    assert not by_id[stopped].running and by_id[stopped].state == "created"

    assert {i.id for i in await engine.list_leased(other_instance)} == {theirs}
    assert {mine, stopped, theirs} <= {i.id for i in await engine.list_leased()}


async def test_volumes_list_while_others_measure_disk_usage(
    docker_url: str, key_prefix: str
) -> None:
    """The engine measures disk usage for one caller at a time and answers any other with 409
    ("a disk usage operation is already running"); 30 people listing their volumes at once must
    all get their list, the sizes being the part that may be missing."""
    label = f"{LABEL_INSTANCE}={key_prefix}"
    engines = [Engine(DockerSettings(url=docker_url, timeout=30)) for _ in range(12)]
    raw = aiodocker.Docker(url=docker_url)
    try:
        await engines[0].ensure_volume(f"{key_prefix}-df", {LABEL_INSTANCE: key_prefix})

        async def measure() -> None:
            for _ in range(5):
                await raw._query_json("system/df", params={"type": "volume"})

        async def listing(engine: Engine) -> list[str]:
            names: list[str] = []
            for _ in range(5):
                names = [v.name for v in await engine.list_volumes([label])]
            return names

        measuring = [asyncio.create_task(measure()) for _ in range(4)]
        lists = await asyncio.gather(*(listing(e) for e in engines))
        await asyncio.gather(*measuring, return_exceptions=True)
        assert lists == [[f"{key_prefix}-df"]] * len(engines)
    finally:
        await engines[0].remove_volume(f"{key_prefix}-df")
        for e in engines:
            await e.close()
        await raw.close()


# --- logs ------------------------------------------------------------------------------------


async def test_logs_without_follow(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container(cmd=["/bin/sh", "-c", "echo one; echo two >&2; printf 'no newline'"])
    await wait_for_state(engine, cid, running=False)
    lines = [line async for line in engine.logs(cid, follow=False)]
    assert sorted(lines) == ["no newline", "one", "two"]  # stdout and stderr, no timestamps
    assert [line async for line in engine.logs(cid, follow=False, tail=1)] in (
        ["no newline"],
        ["two"],
    )


async def test_logs_replace_invalid_utf8_and_keep_long_lines(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cmd = [
        "/bin/sh",
        "-c",
        r"printf 'caf\303\251 \377!\n'; head -c 40000 /dev/zero | tr '\0' x; echo",
    ]
    cid = await run_container(cmd=cmd)
    await wait_for_state(engine, cid, running=False)
    lines = [line async for line in engine.logs(cid, follow=False)]
    assert lines[0] == "café \ufffd!"
    # Docker splits lines over 16 KiB into several messages; they come back as one line.
    assert lines[1:] == ["x" * 40000]


async def test_logs_follow_streams_new_lines(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container()
    lines = await collect(engine.logs(cid, follow=True, tail=0), count=2)
    assert lines == ["tick", "tick"]


async def test_logs_follow_ends_when_the_container_stops(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container(cmd=COUNTER_CMD)
    got: list[str] = []

    async def follow() -> None:
        async for line in engine.logs(cid, follow=True):
            got.append(line)
            if len(got) == 3:
                await engine.stop(cid)

    async with asyncio.timeout(15):
        await follow()
    # Every line exactly once, in order, up to the last one written before the stop.
    assert got == [f"line{i}" for i in range(1, len(got) + 1)]
    final = [line async for line in engine.logs(cid, follow=False)]
    assert got == final


async def test_logs_follow_across_a_restart_has_no_duplicates(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container(cmd=COUNTER_CMD)
    got: list[str] = []
    lines = engine.logs(cid, follow=True)
    async with asyncio.timeout(20), aclosing(lines):
        async for line in lines:
            got.append(line)
            if len(got) == 2:
                # Follow streams end when the container stops; if it runs again by the time
                # the engine looks, the stream is resumed from the last timestamp seen.
                await engine.restart(cid)
            if len(got) >= 8:
                break
    # Nothing repeated, nothing lost: the counter survives the restart in /tmp/n.
    assert got == [f"line{i}" for i in range(1, len(got) + 1)]


async def test_logs_generator_closes_cleanly(
    engine: Engine, run_container: Callable[..., Awaitable[str]]
) -> None:
    cid = await run_container()
    lines = engine.logs(cid, follow=True)
    assert await asyncio.wait_for(anext(lines), 10) == "tick"
    await lines.aclose()

    # Cancelling a consumer blocked on a quiet stream releases it too.
    quiet = await run_container(cmd=["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"])
    task = asyncio.create_task(collect(engine.logs(quiet, follow=True), count=1, within=30))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await engine.ping()  # the engine is still usable after both


async def test_logs_of_a_missing_container(engine: Engine) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        await collect(engine.logs("containerlease-no-such-container", follow=True), count=1)


# --- shell -----------------------------------------------------------------------------------


class _Terminal:
    """sys.stdin / stdout / stderr replaced by a pipe and byte buffers.

    Set up inside the test body: pytest's own capture replaces sys.stdout between phases.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        read_fd, self.write_fd = os.pipe()
        self.stdin = open(read_fd, closefd=True)  # noqa: SIM115 - closed in close()
        self.out = io.BytesIO()
        self.err = io.BytesIO()
        # Kept referenced: a collected TextIOWrapper closes its buffer.
        self._wrappers = (io.TextIOWrapper(self.out), io.TextIOWrapper(self.err))
        monkeypatch.setattr(sys, "stdin", self.stdin)
        monkeypatch.setattr(sys, "stdout", self._wrappers[0])
        monkeypatch.setattr(sys, "stderr", self._wrappers[1])

    def type(self, text: str) -> None:
        os.write(self.write_fd, text.encode())

    def end_input(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.end_input()
        self.stdin.close()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], _Terminal]]:
    made: list[_Terminal] = []

    def make() -> _Terminal:
        made.append(_Terminal(monkeypatch))
        return made[-1]

    yield make
    for term in made:
        term.close()


async def test_shell_through_a_pipe_returns_the_exit_code(
    engine: Engine, run_container: Callable[..., Awaitable[str]], terminal: Callable[[], _Terminal]
) -> None:
    cid = await run_container()
    term = terminal()
    # stdin stays open: the shell ends by itself and shell() must not wait for more input.
    term.type("echo hello $GREETING; echo oops >&2; exit 3\n")
    async with asyncio.timeout(15):
        code = await engine.shell(cid)
    assert code == 3
    assert term.out.getvalue() == b"hello hi there\n"
    assert term.err.getvalue() == b"oops\n"


async def test_shell_passes_end_of_input_on(
    engine: Engine, run_container: Callable[..., Awaitable[str]], terminal: Callable[[], _Terminal]
) -> None:
    cid = await run_container()
    term = terminal()
    term.type("first\nsecond, no newline")
    term.end_input()
    # cat ends only when its stdin does: the local end of input must reach the container.
    async with asyncio.timeout(15):
        code = await engine.shell(cid, ["/bin/sh", "-c", "cat; exit 4"])
    assert code == 4
    assert term.out.getvalue() == b"first\nsecond, no newline"


async def test_shell_on_a_terminal(
    engine: Engine, run_container: Callable[..., Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await run_container()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    before = termios.tcgetattr(slave)
    out = io.BytesIO()
    wrapper = io.TextIOWrapper(out)
    with open(slave, closefd=False) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        monkeypatch.setattr(sys, "stdout", wrapper)

        async def type_once_raw() -> None:
            # Input typed before raw mode would be flushed by it: wait for the switch.
            while termios.tcgetattr(slave)[3] & termios.ICANON:  # noqa: ASYNC110 - a flag poll
                await asyncio.sleep(0.02)
            os.write(master, b"stty size; exit 5\r")

        try:
            async with asyncio.timeout(15):
                code, _ = await asyncio.gather(engine.shell(cid), type_once_raw())
            assert code == 5
            assert b"40 100\r\n" in out.getvalue()  # the remote TTY got the local size
            assert termios.tcgetattr(slave) == before  # the local terminal is restored
            assert signal.getsignal(signal.SIGWINCH) == signal.SIG_DFL
        finally:
            os.close(master)
            os.close(slave)


async def test_shell_in_a_stopped_container(
    engine: Engine, run_container: Callable[..., Awaitable[str]], terminal: Callable[[], _Terminal]
) -> None:
    cid = await run_container(start=False)
    terminal()
    with pytest.raises(EngineError, match="is not running"):
        await engine.shell(cid)
