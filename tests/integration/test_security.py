"""A shared box: ownership between real OS users, quotas under races, hardened containers.

The CLI runs as the OS users ``cl-alice``, ``cl-bob`` and ``cl-admin`` that ``scripts/test``
creates. Each run forks, drops to that user's uid/gid (with the ``docker`` group, as a developer
on a shared box has) and calls the CLI's ``main`` — the same switch ``runuser`` makes, without
needing the test interpreter's path (often under a 0700 home) to be reachable by those users.
"""

from __future__ import annotations

import asyncio
import grp
import io
import os
import pwd
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

# Everything the CLI imports lazily is imported here, before forking: the child may not be
# allowed to read the checkout once it runs as another user.
import containerlease_tui.cli as cli_module
import containerlease_tui.engine
import containerlease_tui.leases
import containerlease_tui.store  # noqa: F401
from containerlease_tui.config import Settings, load_settings
from containerlease_tui.engine import LABEL_INSTANCE
from containerlease_tui.leases import InvalidInput, LeaseService, ProvisionRequest, QuotaError

pytestmark = pytest.mark.usefixtures("cleanup_containers")
USERS = ("cl-alice", "cl-bob", "cl-admin")


@dataclass
class Run:
    code: int
    out: str
    err: str


def _run_as(user: str, config: Path, *args: str) -> Run:
    """Fork, become ``user`` (uid, gid, groups), run ``containerlease ARGS``; collect output."""
    entry = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.setgroups(groups)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.environ.update({"CONTAINERLEASE_CONFIG": str(config), "HOME": "/", "USER": "root"})
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            sys.argv = ["containerlease", *args]
            try:
                cli_module.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
        out_text, err_text = out.read(), err.read()
    _, status = os.waitpid(pid, 0)
    return Run(os.waitstatus_to_exitcode(status), out_text, err_text)


@pytest.fixture
def shared_config(config_file: Path) -> Iterator[Path]:
    """The test config, readable by the other users, with cl-admin as an admin."""
    if os.getuid() != 0:
        pytest.skip("switching OS users needs root (scripts/test runs as root in CI)")
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.fail(f"OS user {user} is missing: scripts/test creates it")
    folder = Path(tempfile.mkdtemp(prefix="cl-sec-"))
    folder.chmod(0o755)
    path = folder / "config.toml"
    path.write_text(config_file.read_text() + '\n[security]\nadmins = ["cl-admin"]\n')
    path.chmod(0o644)
    yield path
    path.unlink()
    folder.rmdir()


def test_owner_is_the_os_user_and_others_are_refused(shared_config: Path) -> None:
    made = _run_as("cl-alice", shared_config, "provision", "busybox", "--wait", "--json")
    assert made.code == 0, made.err
    import json

    lease = json.loads(made.out)
    assert lease["owner"] == "cl-alice"  # from the uid, although $USER said root
    lid = lease["id"]

    seen = _run_as("cl-bob", shared_config, "ls", "--all", "--json")
    assert seen.code == 0 and lid in seen.out  # everyone may see the list

    for args in (
        ["rm", lid],
        ["extend", lid, "--by", "5m"],
        ["shell", lid],
        ["logs", lid],
        ["stop", lid],
        ["restart", lid],
    ):
        refused = _run_as("cl-bob", shared_config, *args)
        assert refused.code == 1, (args, refused)
        assert "belongs to cl-alice" in refused.err, (args, refused.err)
        assert len(refused.err.strip().splitlines()) == 1
        assert "Traceback" not in refused.err

    still = _run_as("cl-alice", shared_config, "status", lid, "--json")
    assert still.code == 0 and '"running"' in still.out

    logs = _run_as("cl-admin", shared_config, "logs", lid, "--tail", "3")
    assert logs.code == 0 and "tick" in logs.out, logs.err
    extended = _run_as("cl-admin", shared_config, "extend", lid, "--by", "5m", "--json")
    assert extended.code == 0, extended.err
    removed = _run_as("cl-admin", shared_config, "rm", lid)
    assert removed.code == 0, removed.err


async def test_parallel_provisions_respect_the_user_quota(settings: Settings) -> None:
    limited = settings.model_copy(deep=True)
    limited.limits.max_leases_per_user = 3
    services = [LeaseService.open(limited, user="racer") for _ in range(12)]
    try:
        results = await asyncio.gather(
            *(s.submit(ProvisionRequest("busybox", "10m")) for s in services),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        assert len(won) == 3
        assert all(isinstance(r, QuotaError) for r in results if isinstance(r, BaseException))
        assert await services[0].store.active_count("racer") == 3
        assert len(await services[0].list()) == 3
    finally:
        for s in services:
            await s.close()


async def test_daily_budget(settings: Settings) -> None:
    budgeted = settings.model_copy(deep=True)
    budgeted.limits.daily_budget_hours = __import__("decimal").Decimal("1")
    svc = LeaseService.open(budgeted, user=f"budget{secrets.token_hex(3)}")
    try:
        lease = await svc.submit(ProvisionRequest("busybox", "40m"))
        with pytest.raises(QuotaError, match="daily budget"):
            await svc.submit(ProvisionRequest("busybox", "30m"))
        with pytest.raises(QuotaError, match="daily budget"):
            await svc.extend(lease.id, "30m")
        await svc.extend(lease.id, "20m")  # exactly the hour
    finally:
        await svc.close()


async def test_containers_are_hardened(settings: Settings, docker: aiodocker.Docker) -> None:
    svc = LeaseService.open(settings, user="alice")
    try:
        lease = await svc.provision(ProvisionRequest("busybox", "10m"))
    finally:
        await svc.close()
    assert lease.docker_id
    info = await docker.containers.container(lease.docker_id).show()
    host = info["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(settings.security.cap_allowlist)
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["PidsLimit"] == 64
    assert host["Memory"] == 64 * 1024**2
    assert host["NanoCpus"] == 500_000_000
    assert not host.get("Binds")
    # And the kernel agrees: the process may not gain privileges.
    exec_ = await docker.containers.container(lease.docker_id).exec(
        ["/bin/sh", "-c", "grep NoNewPrivs /proc/1/status"], stdout=True
    )
    output = await exec_.start(detach=False).read_out()
    assert output is not None and b"1" in output.data


async def test_bind_mounts_only_from_the_allowlist(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    allowed = tmp_path / "shared"
    allowed.mkdir()
    text = config_file.read_text()
    bad = text.replace("pids = 64\n", 'pids = 64\nbinds = ["/etc:/host-etc:ro"]\n', 1)
    bad += f'\n[security]\nbind_allowlist = ["{allowed}"]\n'
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(path))
    svc = LeaseService.open(load_settings(), user="alice")
    try:
        with pytest.raises(InvalidInput, match="not under an allowed folder"):
            await svc.provision(ProvisionRequest("busybox", "10m"))
        assert await svc.list(all_users=True) == []
    finally:
        await svc.close()
    prefix = load_settings().redis.key_prefix
    found = await docker.containers.list(
        all=True, filters={"label": [f"{LABEL_INSTANCE}={prefix}"]}
    )
    assert found == []

    good = text.replace("pids = 64\n", f'pids = 64\nbinds = ["{allowed}:/data:ro"]\n', 1)
    good += f'\n[security]\nbind_allowlist = ["{allowed}"]\n'
    path.write_text(good)
    svc = LeaseService.open(load_settings(), user="alice")
    try:
        lease = await svc.provision(ProvisionRequest("busybox", "10m"))
        assert lease.docker_id
        info = await docker.containers.container(lease.docker_id).show()
        assert info["HostConfig"]["Binds"] == [f"{allowed}:/data:ro"]
    finally:
        await svc.close()


async def test_redis_acl_user_and_secret_never_shown(
    settings: Settings, redis_url: str, key_prefix: str
) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    user, password = f"cl{secrets.token_hex(3)}", secrets.token_hex(12)
    await admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{key_prefix}:*"],
        commands=["+@all"],
    )
    try:
        base = redis_url.removeprefix("redis://")
        good = settings.model_copy(deep=True)
        good.redis.url = f"redis://{user}:{password}@{base}"
        svc = LeaseService.open(good, user="alice")
        try:
            lease = await svc.submit(ProvisionRequest("busybox", "10m"))
            assert [x.id for x in await svc.list()] == [lease.id]
        finally:
            await svc.close()
        wrong = settings.model_copy(deep=True)
        wrong.redis.url = f"redis://{user}:wrong-{password}@{base}"
        svc = LeaseService.open(wrong, user="alice")
        try:
            with pytest.raises(Exception) as caught:
                await svc.list()
            assert password not in str(caught.value)
            assert "\n" not in str(caught.value)
        finally:
            await svc.close()
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()
