"""The container lifecycle of issue 17 against the real engine and redis-server: published
ports, command and working directory, named volumes that outlive a lease, and ``cp`` in and out.

The CLI runs as a real subprocess; a second user is a second in-process LeaseService.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiodocker
import pytest
import redis

from containerlease_tui.config import DockerSettings, Settings, load_settings
from containerlease_tui.engine import Engine, EngineError
from containerlease_tui.labels import LABEL_INSTANCE, volume_engine_name, volume_labels
from containerlease_tui.leases import InvalidInput, LeaseService, ProvisionRequest

pytestmark = pytest.mark.usefixtures("cleanup_containers")

WEB_CMD = ["/bin/sh", "-c", "echo hello > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]


@pytest.fixture(scope="module")
def network() -> Iterator[str]:
    """A bridge network of its own: the private engine runs with ``--bridge=none``, so the
    default network publishes nothing."""
    url = os.environ.get("CONTAINERLEASE_DOCKER_URL")
    if not url:
        pytest.skip("CONTAINERLEASE_DOCKER_URL is not set (run through scripts/test)")
    name = f"cl-lc-{secrets.token_hex(4)}"

    async def make() -> None:
        client = aiodocker.Docker(url=url)
        try:
            await client.networks.create({"Name": name, "Driver": "bridge"})
        finally:
            await client.close()

    async def drop() -> None:
        client = aiodocker.Docker(url=url)
        try:
            with contextlib.suppress(aiodocker.DockerError):
                await (await client.networks.get(name)).delete()
        finally:
            await client.close()

    asyncio.run(make())
    yield name
    asyncio.run(drop())


@pytest.fixture
def lc_config(config_file: Path, test_image: str, network: str) -> Path:
    """The test config, with an image that publishes a port and has a working directory."""
    text = config_file.read_text().replace("[docker]\n", f'[docker]\nnetwork = "{network}"\n', 1)
    text += f"""
[images.web]
ref = "{test_image}"
hourly_rate = "0.10"
ports = ["8080/tcp"]
cmd = {json.dumps(WEB_CMD)}
workdir = "/tmp"
memory = "64m"
cpus = 0.5
pids = 64
"""
    text = text.replace("max_leases_per_user = 100", "max_leases_per_user = 100\nmax_ports = 3")
    config_file.write_text(text)
    return config_file


@pytest.fixture
def lc_settings(lc_config: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(lc_config))
    return load_settings()


@pytest.fixture
async def cleanup_volumes(docker_url: str, key_prefix: str) -> AsyncIterator[None]:
    """Remove this test's named volumes (by the instance label) when it ends."""
    yield
    engine = Engine(DockerSettings(url=docker_url))
    try:
        for volume in await engine.list_volumes([f"{LABEL_INSTANCE}={key_prefix}"]):
            with contextlib.suppress(EngineError):
                await engine.remove_volume(volume.name)
    finally:
        await engine.close()


class Cli:
    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "CONTAINERLEASE_CONFIG": str(config)}

    def __call__(
        self, *args: str, cwd: Path | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "containerlease_tui", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )

    def json(self, *args: str) -> dict[str, object]:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert isinstance(data, dict)
        return data

    def rows(self, *args: str) -> list[dict[str, object]]:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert isinstance(data, list)
        return data


@pytest.fixture
def cli(lc_config: Path) -> Cli:
    return Cli(lc_config)


def _one_line(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert text in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def _get(address: str, path: str = "/index.html") -> str:
    """GET from a published ``host:port``, retried while the server comes up (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=3) as reply:
                body: bytes = reply.read()
                return body.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _exec(cli: Cli, lease: str, *cmd: str) -> str:
    done = cli("exec", lease, "--", *cmd)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- 1. ports ----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_published_port_answers_and_shows_in_ls_and_status(cli: Cli) -> None:
    lease = cli.json("provision", "web", "-p", "9090", "-p", "53/udp", "--wait")
    ports = lease["ports"]
    assert isinstance(ports, dict) and set(ports) == {"8080/tcp", "9090/tcp", "53/udp"}
    address = ports["8080/tcp"]
    assert isinstance(address, str) and address.startswith("127.0.0.1:")
    assert _get(address).strip() == "hello"

    listed = cli.rows("ls")
    assert listed[0]["ports"] == ports
    status = cli.json("status", str(lease["id"]))
    assert status["ports"] == ports
    human = cli("status", str(lease["id"]))
    assert human.returncode == 0 and f"8080/tcp -> {address}" in human.stdout

    stopped = cli.json("stop", str(lease["id"]))
    assert stopped["ports"] == dict.fromkeys(ports)  # a stopped container publishes nothing
    started = cli.json("start", str(lease["id"]))
    again = started["ports"]
    assert isinstance(again, dict) and isinstance(again["8080/tcp"], str)
    assert _get(again["8080/tcp"]).strip() == "hello"


def test_ports_publish_on_the_configured_address_only(cli: Cli, docker_url: str) -> None:
    lease = cli.json("provision", "web", "--wait")

    async def bindings() -> object:
        client = aiodocker.Docker(url=docker_url)
        try:
            data = await client.containers.container(str(lease["docker_id"])).show()
            return data["HostConfig"]["PortBindings"]
        finally:
            await client.close()

    assert asyncio.run(bindings()) == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}


# --- 2. command and working directory ---------------------------------------------------------


def test_cmd_and_workdir_take_effect(cli: Cli) -> None:
    lease = cli.json("provision", "busybox", "--cmd", "sleep 3600", "--workdir", "/etc", "--wait")
    assert lease["cmd"] == ["sleep", "3600"] and lease["workdir"] == "/etc"
    lid = str(lease["id"])
    assert _exec(cli, lid, "pwd").strip() == "/etc"
    assert "sleep 3600" in _exec(cli, lid, "ps", "-o", "args")
    # The catalog's workdir is the default.
    web = cli.json("provision", "web", "--wait")
    assert web["workdir"] is None
    assert _exec(cli, str(web["id"]), "pwd").strip() == "/tmp"


# --- bad input for every new flag -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["-p", "0"], "invalid port"),
        (["-p", "70000"], "invalid port"),
        (["-p", "http"], "invalid port"),
        (["-p", "80/icmp"], "invalid port"),
        (["-p", "1", "-p", "2", "-p", "3"], "too many ports"),
        (["--cmd", "'unclosed"], "invalid command"),
        (["--cmd", "x" * 5000], "invalid command"),
        (["--workdir", "relative/dir"], "invalid workdir"),
        (["--workdir", "/a/../b"], "invalid workdir"),
        (["--workdir", "/a\x1b[31m"], "invalid workdir"),
        (["-v", "work"], "use NAME:/container/path"),
        (["-v", "Work:/w"], "invalid volume name"),
        (["-v", "../x:/w"], "invalid volume name"),
        (["-v", "work:relative"], "invalid volume path"),
        (["-v", "work:/"], "over the container's /"),
        (["-v", "a:/w", "-v", "b:/w"], "two mounts"),
        (["-v", "a:/w", "-v", "a:/x"], "mounted twice"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, args: list[str], text: str, redis_url: str, key_prefix: str, docker_url: str
) -> None:
    image = "web" if args[0] == "-p" else "busybox"
    done = cli("provision", image, *args, "--wait")
    _one_line(done, 2, text)
    assert cli.rows("ls", "--all") == []
    r = redis.Redis.from_url(redis_url)
    assert not list(r.scan_iter(match=f"{key_prefix}:lease:*"))

    async def volumes() -> list[object]:
        engine = Engine(DockerSettings(url=docker_url))
        try:
            return list(await engine.list_volumes([f"{LABEL_INSTANCE}={key_prefix}"]))
        finally:
            await engine.close()

    assert asyncio.run(volumes()) == []


# --- 3. named volumes -------------------------------------------------------------------------


@pytest.mark.usefixtures("cleanup_volumes")
@pytest.mark.timeout(360)  # a dozen CLI runs, each a fresh interpreter, on a loaded box
def test_a_named_volume_outlives_its_lease_and_is_its_owners(
    cli: Cli, lc_settings: Settings
) -> None:
    first = cli.json("provision", "busybox", "-v", "work:/work", "--wait")
    assert first["volumes"] == {"work": "/work"}
    _exec(cli, str(first["id"]), "sh", "-c", "echo kept > /work/file")
    rows = cli.rows("volumes")
    assert [r["name"] for r in rows] == ["work"] and rows[0]["leases"] == [first["id"]]

    refused = cli("volume", "rm", "work")
    _one_line(refused, 2, "in use")
    assert cli("rm", str(first["id"])).returncode == 0

    second = cli.json("provision", "busybox", "-v", "work:/data", "--wait")
    assert _exec(cli, str(second["id"]), "cat", "/data/file").strip() == "kept"

    async def as_bob() -> str:
        bob = LeaseService.open(lc_settings, user="cl-bob-test")
        try:
            lease = await bob.provision(ProvisionRequest("busybox", volumes=["work:/work"]))
            assert lease.docker_id
            found = await bob.exec(lease, ["sh", "-c", "ls /work; echo done"])
            names = [row.name for row in await bob.volumes()]
            assert names == ["work"]  # bob's own, new and empty
            await bob.release(lease.id)
            await bob.volume_rm("work")
            return found.stdout.decode()
        finally:
            await bob.close()

    assert asyncio.run(as_bob()).split() == ["done"]  # alice's file is not in bob's volume
    assert [r["name"] for r in cli.rows("volumes")] == ["work"]  # alice's is still there

    assert cli("rm", str(second["id"])).returncode == 0
    gone = cli("volume", "rm", "work")
    assert gone.returncode == 0, gone.stderr
    assert cli.rows("volumes") == []
    _one_line(cli("volume", "rm", "work"), 2, "no volume work")


@pytest.mark.usefixtures("cleanup_volumes")
async def test_a_volume_made_under_anothers_name_is_refused(
    lc_settings: Settings, docker_url: str, key_prefix: str
) -> None:
    # Someone with the Docker socket makes the volume bob's "work" would be, labelled as alice's.
    engine_name = volume_engine_name(key_prefix, "cl-bob-test", "work")
    engine = Engine(DockerSettings(url=docker_url))
    await engine.ensure_volume(engine_name, volume_labels(key_prefix, "cl-alice-test", "work"))
    await engine.close()
    bob = LeaseService.open(lc_settings, user="cl-bob-test")
    try:
        with pytest.raises(InvalidInput, match="not labelled as yours"):
            await bob.submit(ProvisionRequest("busybox", volumes=["work:/work"]))
        assert await bob.list() == []
        assert await bob.volumes() == []
    finally:
        await bob.close()


@pytest.mark.usefixtures("cleanup_volumes")
async def test_the_reaper_leaves_named_volumes(
    lc_settings: Settings, docker: aiodocker.Docker
) -> None:
    service = LeaseService.open(lc_settings, user="cl-carol-test")
    try:
        lease = await service.provision(
            ProvisionRequest("busybox", duration="2s", volumes=["keep:/keep"])
        )
        assert lease.docker_id
        await service.exec(lease, ["sh", "-c", "echo still > /keep/f"])
        stop = asyncio.Event()
        reaper = asyncio.create_task(service.run_reaper(stop, mode="in-app"))
        try:
            deadline = time.monotonic() + 30
            while (await service.resolve(lease.id)).status.value != "expired":
                assert time.monotonic() < deadline, "the reaper did not expire the lease"
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await reaper
        with pytest.raises(aiodocker.DockerError):
            await docker.containers.container(lease.docker_id).show()
        rows = await service.volumes()
        assert [r.name for r in rows] == ["keep"] and rows[0].leases == ()
        again = await service.provision(ProvisionRequest("busybox", volumes=["keep:/k"]))
        out = await service.exec(again, ["cat", "/k/f"])
        assert out.stdout.decode().strip() == "still"
        await service.release(again.id)
    finally:
        await service.close()


async def test_the_per_user_volume_limit(
    lc_settings: Settings, monkeypatch: pytest.MonkeyPatch, cleanup_volumes: None
) -> None:
    from containerlease_tui.leases import QuotaError

    settings = lc_settings.model_copy(
        update={"limits": lc_settings.limits.model_copy(update={"max_volumes_per_user": 1})}
    )
    service = LeaseService.open(settings, user="cl-dave-test")
    try:
        lease = await service.provision(ProvisionRequest("busybox", volumes=["one:/one"]))
        with pytest.raises(QuotaError, match="volume limit"):
            await service.submit(ProvisionRequest("busybox", volumes=["two:/two"]))
        # The one it has may be mounted again.
        await service.release(lease.id)
        again = await service.provision(ProvisionRequest("busybox", volumes=["one:/one"]))
        await service.release(again.id)
    finally:
        await service.close()


# --- 4. cp in and out -------------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 4096)
    (root / "src" / "link").symlink_to("main.py")


@pytest.mark.parametrize("state", ["running", "stopped"])
@pytest.mark.timeout(300)
def test_cp_in_and_out(cli: Cli, tmp_path: Path, state: str) -> None:
    _tree(tmp_path)
    lease = cli.json("provision", "busybox", "--wait")
    lid = str(lease["id"])
    if state == "stopped":
        assert cli("stop", lid).returncode == 0
    done = cli("cp", str(tmp_path / "src"), f"{lid}:/tmp")
    assert done.returncode == 0, done.stderr
    assert "copied 2 file(s)" in done.stdout  # the link is no file

    out = tmp_path / "out"
    out.mkdir()
    back = cli("cp", f"{lid}:/tmp/src", str(out))
    assert back.returncode == 0, back.stderr
    assert (out / "src" / "main.py").read_text() == "print('hi')\n"
    assert (out / "src" / "pkg" / "data.bin").read_bytes() == bytes(range(256)) * 4096
    assert os.readlink(out / "src" / "link") == "main.py"
    # One file to a new name, relative to the working directory.
    single = cli("cp", f"{lid}:/tmp/src/main.py", "renamed.py", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "renamed.py").read_text() == "print('hi')\n"
    if state == "stopped":
        assert cli("start", lid).returncode == 0
    assert _exec(cli, lid, "cat", "/tmp/src/main.py") == "print('hi')\n"


def test_cp_refuses_a_symlink_out_of_the_source(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.txt").write_text("ok")
    (tmp_path / "src" / "secret").symlink_to("/etc/passwd")
    lease = cli.json("provision", "busybox", "--wait")
    lid = str(lease["id"])
    _one_line(cli("cp", str(tmp_path / "src"), f"{lid}:/tmp"), 2, "outside")
    assert "src" not in _exec(cli, lid, "ls", "/tmp").split()


def test_cp_out_refuses_an_archive_that_escapes(cli: Cli, tmp_path: Path) -> None:
    lease = cli.json("provision", "busybox", "--wait")
    lid = str(lease["id"])
    # The container plants a link leading out of wherever the copy lands, and a file behind it.
    _exec(cli, lid, "sh", "-c", "mkdir -p /tmp/evil && ln -s ../../../../../../etc /tmp/evil/up")
    dest = tmp_path / "dest"
    dest.mkdir()
    _one_line(cli("cp", f"{lid}:/tmp/evil", str(dest)), 1, "refused archive entry")
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["./a", "./b"], "one host path and one LEASE:/path"),
        (["x:/a", "y:/b"], "one host path and one LEASE:/path"),
        (["{lid}:/tmp/../etc", "."], "invalid container path"),
        (["{lid}:/nope/missing", "."], "does not exist"),
        (["./missing-here", "{lid}:/tmp"], "no such file or folder"),
    ],
)
def test_cp_bad_input(cli: Cli, tmp_path: Path, args: list[str], text: str) -> None:
    lease = cli.json("provision", "busybox", "--wait")
    lid = str(lease["id"])
    here = tmp_path / "here"
    here.mkdir()
    done = cli("cp", *(a.format(lid=lid) for a in args), cwd=here)
    assert done.returncode in (1, 2)
    _one_line(done, done.returncode, text)
    assert list(here.iterdir()) == []


# --- the host side of cp, with archives no engine would make ------------------------------------


def _hostile(*entries: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buffer.getvalue()


def _entry(name: str, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1 if fields.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(
    "make",
    [
        lambda: _hostile(_entry("top"), _entry("top/../../escape")),
        lambda: _hostile(_entry("/abs/escape")),
        lambda: _hostile(
            _entry("top", type=tarfile.DIRTYPE, mode=0o755),
            _entry("top/up", type=tarfile.SYMTYPE, linkname="/"),
            _entry("top/up/tmp/escape"),
        ),
        lambda: _hostile(_entry("top", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
    ],
    ids=["dotdot", "absolute", "symlink-then-file", "device"],
)
def test_unpack_refuses_hostile_entries(tmp_path: Path, make: Callable[[], bytes]) -> None:
    from containerlease_tui.archive import ArchiveError, unpack

    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    with pytest.raises(ArchiveError, match="refused"):
        unpack(make(), dest)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


# --- 6. health --------------------------------------------------------------------------------


@pytest.fixture
def health_image(docker_url: str, test_image: str) -> Iterator[str]:
    """The test image with a HEALTHCHECK (healthy once /tmp/ok exists), made by committing a
    container with a health check config: the image then carries it, as a Dockerfile's would."""
    tag = f"containerlease-test:health-{secrets.token_hex(3)}"
    repo, _, version = tag.partition(":")

    async def make() -> None:
        client = aiodocker.Docker(url=docker_url)
        try:
            container = await client.containers.create({"Image": test_image, "Cmd": ["true"]})
            await container.commit(
                repository=repo,
                tag=version,
                config={
                    "Healthcheck": {
                        "Test": ["CMD-SHELL", "test -f /tmp/ok"],
                        "Interval": 300_000_000,
                        "StartPeriod": 0,
                        "Retries": 1,
                    }
                },
            )
            await container.delete(force=True)
        finally:
            await client.close()

    async def drop() -> None:
        client = aiodocker.Docker(url=docker_url)
        try:
            with contextlib.suppress(aiodocker.DockerError):
                await client.images.delete(tag, force=True)
        finally:
            await client.close()

    asyncio.run(make())
    yield tag
    asyncio.run(drop())


@pytest.mark.timeout(300)
def test_status_shows_the_images_healthcheck_state(lc_config: Path, health_image: str) -> None:
    lc_config.write_text(
        lc_config.read_text()
        + f"""
[images.checked]
ref = "{health_image}"
hourly_rate = "0.10"
memory = "64m"
"""
    )
    cli = Cli(lc_config)
    lease = cli.json("provision", "checked", "--wait")
    lid = str(lease["id"])

    def health() -> object:
        return cli.json("status", lid)["health"]

    deadline = time.monotonic() + 60
    while health() != "unhealthy":
        assert time.monotonic() < deadline, "never unhealthy"
    _exec(cli, lid, "touch", "/tmp/ok")
    while health() != "healthy":
        assert time.monotonic() < deadline, "never healthy"
    human = cli("status", lid)
    assert "health: healthy" in human.stdout and "uptime:" in human.stdout
