"""A shared box: ownership between real OS users, quotas under races, hardened containers.

The CLI runs as the OS users ``cl-alice``, ``cl-bob`` and ``cl-admin`` that ``scripts/test``
creates, each through ``runuser`` (a fresh process with that user's uid, gid and groups, the
``docker`` group among them, as a developer on a shared box has). Those users cannot reach a
Python under root's 0700 home, so they run the system's Python of the same version on a
world-readable copy of the package and its dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from containerlease_tui.config import Settings, load_settings
from containerlease_tui.engine import LABEL_INSTANCE
from containerlease_tui.leases import InvalidInput, LeaseService, ProvisionRequest, QuotaError
from tests.store_helpers import active_count

pytestmark = pytest.mark.usefixtures("cleanup_containers")
USERS = ("cl-alice", "cl-bob", "cl-admin")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class UserPython:
    """A Python every test user can run, and the ``PYTHONPATH`` that finds the package."""

    executable: str
    path: str


_USER_PYTHON: list[UserPython] = []


def _reachable(user: str, *paths: str) -> bool:
    check = ["runuser", "-u", user, "--", "test", "-r"]
    return all(subprocess.run([*check, p], capture_output=True).returncode == 0 for p in paths)


def _user_python() -> UserPython:
    """The system Python of this interpreter's version, over this venv's packages (copied to a
    world-readable folder when the checkout or the venv is out of the users' reach)."""
    if _USER_PYTHON:
        return _USER_PYTHON[0]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    executable = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin")
    if executable is None:
        pytest.fail(f"no system python{version} for the other OS users (install python3)")
    site = sysconfig.get_paths()["purelib"]
    needed = (executable, f"{site}/redis/__init__.py", f"{REPO}/pyproject.toml")
    if not _reachable("cl-alice", *needed):
        # scripts/test removes its work folder at the end, and this copy with it.
        work = os.environ.get("CONTAINERLEASE_TEST_WORKDIR", "/tmp")
        shared = Path(tempfile.mkdtemp(prefix="userpy-", dir=work))
        os.chmod(shared, 0o755)
        shutil.copytree(site, shared / "site", symlinks=True)
        shutil.copytree(REPO / "containerlease_tui", shared / "site" / "containerlease_tui")
        for folder, dirs, files in os.walk(shared):
            for name in dirs:
                os.chmod(Path(folder, name), 0o755)
            for name in files:
                with contextlib.suppress(OSError):
                    os.chmod(Path(folder, name), 0o644)
        site, repo = str(shared / "site"), str(shared / "site")
    else:
        repo = str(REPO)
    found = UserPython(executable, f"{repo}:{site}")
    _USER_PYTHON.append(found)
    return found


def _run_as(
    user: str,
    config: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
) -> Run:
    """``runuser -u USER -- python -m containerlease_tui ARGS``; collect output.

    ``env`` is added to a clean environment (in which ``$USER`` lies: the owner must come from
    the uid); ``stdin`` is what the command reads (then EOF).
    """
    python = _user_python()
    clean = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": python.path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "CONTAINERLEASE_CONFIG": str(config),
        "HOME": "/",
        "USER": "root",
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    done = subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "env",
            "-i",
            *(f"{key}={value}" for key, value in clean.items()),
            python.executable,
            "-m",
            "containerlease_tui",
            *args,
        ],
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def make_shared_config(config_file: Path) -> Iterator[Callable[..., Path]]:
    """A factory: the test config plus a ``[security]`` body (and text replacements), readable
    by the other users."""
    if os.getuid() != 0:
        pytest.skip("switching OS users needs root (scripts/test runs as root in CI)")
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.fail(f"OS user {user} is missing: scripts/test creates it")
    folder = Path(tempfile.mkdtemp(prefix="cl-sec-"))
    folder.chmod(0o755)
    made = 0

    def make(security: str, replace: dict[str, str] | None = None) -> Path:
        nonlocal made
        made += 1
        text = config_file.read_text()
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        path = folder / f"config-{made}.toml"
        path.write_text(f"{text}\n[security]\n{security}\n")
        path.chmod(0o644)
        return path

    yield make
    shutil.rmtree(folder)


@pytest.fixture
def shared_config(make_shared_config: Callable[..., Path]) -> Path:
    """The test config, readable by the other users, with cl-admin as an admin."""
    return make_shared_config('admins = ["cl-admin"]')


def _provision_as(user: str, config: Path, *extra: str) -> dict[str, object]:
    made = _run_as(user, config, "provision", "busybox", "--wait", "--json", *extra)
    assert made.code == 0, made.err
    lease: dict[str, object] = json.loads(made.out)
    return lease


def _status_as(user: str, config: Path, lid: str) -> dict[str, object]:
    seen = _run_as(user, config, "status", lid, "--json")
    assert seen.code == 0, seen.err
    status: dict[str, object] = json.loads(seen.out)
    return status


def _refused(run: Run, owner: str) -> bool:
    one_line = len(run.err.strip().splitlines()) == 1
    return run.code == 1 and f"belongs to {owner}" in run.err and one_line


def test_owner_is_the_os_user_and_others_are_refused(shared_config: Path) -> None:
    made = _run_as("cl-alice", shared_config, "provision", "busybox", "--wait", "--json")
    assert made.code == 0, made.err
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


def test_admin_may_shell_stop_start_restart_anothers_lease(shared_config: Path) -> None:
    lid = str(_provision_as("cl-alice", shared_config)["id"])

    # Not an admin: no lifecycle operation on somebody else's container, and nothing changes.
    for args in (["stop", lid], ["start", lid], ["restart", lid]):
        assert _refused(_run_as("cl-bob", shared_config, *args), "cl-alice"), args
    assert _status_as("cl-alice", shared_config, lid)["state"] == "running"

    shell = _run_as(
        "cl-admin", shared_config, "shell", lid, stdin=b"echo admin-in-$((6*7))\nexit 3\n"
    )
    assert shell.code == 3, shell  # the shell's own exit status
    assert "admin-in-42" in shell.out

    stopped = _run_as("cl-admin", shared_config, "stop", lid, "--json")
    assert stopped.code == 0, stopped.err
    status = _status_as("cl-alice", shared_config, lid)
    assert (status["status"], status["state"]) == ("stopped", "exited")
    assert _refused(_run_as("cl-bob", shared_config, "start", lid), "cl-alice")
    assert _status_as("cl-alice", shared_config, lid)["state"] == "exited"

    started = _run_as("cl-admin", shared_config, "start", lid)
    assert started.code == 0, started.err
    assert _status_as("cl-alice", shared_config, lid)["state"] == "running"
    restarted = _run_as("cl-admin", shared_config, "restart", lid)
    assert restarted.code == 0, restarted.err
    status = _status_as("cl-alice", shared_config, lid)
    assert (status["status"], status["state"], status["owner"]) == (
        "running",
        "running",
        "cl-alice",
    )


@pytest.fixture
def admin_group() -> Iterator[str]:
    """A throwaway OS group with cl-admin as its only member (removed afterwards)."""
    if os.getuid() != 0 or not (shutil.which("groupadd") and shutil.which("gpasswd")):
        pytest.skip("creating an OS group needs root and groupadd/gpasswd")
    name = f"cl-adm{secrets.token_hex(3)}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    try:
        subprocess.run(["gpasswd", "-a", "cl-admin", name], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def test_admin_group_members_are_admins(
    make_shared_config: Callable[..., Path], admin_group: str
) -> None:
    config = make_shared_config(f'admin_group = "{admin_group}"')  # and no admins list
    lid = str(_provision_as("cl-alice", config)["id"])

    doctor = _run_as("cl-admin", config, "doctor")
    assert "user:   cl-admin (admin)" in doctor.out, doctor
    doctor = _run_as("cl-bob", config, "doctor")
    assert "user:   cl-bob\n" in doctor.out, doctor

    assert _refused(_run_as("cl-bob", config, "stop", lid), "cl-alice")
    logs = _run_as("cl-admin", config, "logs", lid, "--tail", "2")
    assert logs.code == 0 and "tick" in logs.out, logs.err
    for args in (["stop", lid], ["start", lid], ["extend", lid, "--by", "5m"]):
        done = _run_as("cl-admin", config, *args)
        assert done.code == 0, (args, done.err)
    assert _run_as("cl-admin", config, "rm", lid).code == 0
    assert _status_as("cl-alice", config, lid)["status"] == "released"


def test_extension_limits_on_the_command_line(make_shared_config: Callable[..., Path]) -> None:
    config = make_shared_config(
        "admins = []",
        {
            'max_duration = "8h"': 'max_duration = "1h"',
            'max_lifetime = "24h"': 'max_lifetime = "2h"',
        },
    )
    lease = _provision_as("cl-alice", config, "-d", "1h")
    lid = str(lease["id"])

    too_long = _run_as("cl-alice", config, "extend", lid, "--by", "90m")
    assert too_long.code == 2, too_long
    assert "extension 1h30m is out of range" in too_long.err and "to 1h" in too_long.err
    unchanged = _status_as("cl-alice", config, lid)
    assert (unchanged["expires_at"], unchanged["extensions"]) == (lease["expires_at"], 0)

    full = _run_as("cl-alice", config, "extend", lid, "--by", "1h", "--json")
    assert full.code == 0, full.err  # exactly the total lifetime: allowed
    extended = json.loads(full.out)
    assert extended["extensions"] == 1

    over = _run_as("cl-alice", config, "extend", lid, "--by", "1s")
    assert over.code == 2, over
    assert "at most 2h in total" in over.err
    assert len(over.err.strip().splitlines()) == 1
    after = _status_as("cl-alice", config, lid)
    assert (after["expires_at"], after["extensions"]) == (extended["expires_at"], 1)
    assert after["status"] == "running"


def _cli_as_root(config: Path, *args: str, sudo_uid: int | None) -> Run:
    """A real ``containerlease`` process as root (this suite's user), as sudo would start it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("CONTAINERLEASE_", "SUDO_"))
    }
    env["CONTAINERLEASE_CONFIG"] = str(config)
    if sudo_uid is not None:
        env["SUDO_UID"] = str(sudo_uid)
    done = subprocess.run(
        [sys.executable, "-m", "containerlease_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def test_behind_sudo_the_caller_owns_the_lease(
    make_shared_config: Callable[..., Path], docker: aiodocker.Docker
) -> None:
    """``[security] service_user``: root plays the service user a sudo rule runs as."""
    config = make_shared_config('service_user = "root"')
    alice, bob = pwd.getpwnam("cl-alice").pw_uid, pwd.getpwnam("cl-bob").pw_uid

    made = await asyncio.to_thread(
        _cli_as_root, config, "provision", "busybox", "--wait", "--json", sudo_uid=alice
    )
    assert made.code == 0, made.err
    lease = json.loads(made.out)
    assert lease["owner"] == "cl-alice"
    info = await docker.containers.container(lease["docker_id"]).show()
    assert info["Config"]["Labels"]["containerlease.owner"] == "cl-alice"

    mine = await asyncio.to_thread(_cli_as_root, config, "ls", "--json", sudo_uid=alice)
    assert [x["id"] for x in json.loads(mine.out)] == [lease["id"]]
    refused = await asyncio.to_thread(_cli_as_root, config, "rm", lease["id"], sudo_uid=bob)
    assert _refused(refused, "cl-alice"), refused
    # A uid without an account is named by its number.
    unknown = await asyncio.to_thread(
        _cli_as_root,
        config,
        "provision",
        "busybox",
        "--wait",
        "--json",
        "-d",
        "5m",
        sudo_uid=3999999991,
    )
    assert unknown.code == 0, unknown.err
    assert json.loads(unknown.out)["owner"] == "uid3999999991"
    removed = await asyncio.to_thread(_cli_as_root, config, "rm", lease["id"], sudo_uid=alice)
    assert removed.code == 0, removed.err


def test_sudo_uid_is_ignored_unless_configured_and_run_as_the_service_user(
    make_shared_config: Callable[..., Path],
) -> None:
    alice = str(pwd.getpwnam("cl-alice").pw_uid)
    plain = make_shared_config("admins = []")
    made = _cli_as_root(plain, "provision", "busybox", "--wait", "--json", sudo_uid=int(alice))
    assert made.code == 0, made.err
    assert json.loads(made.out)["owner"] == "root"  # no service_user: SUDO_UID means nothing

    # cl-bob is not the service user: setting SUDO_UID himself makes him nobody else.
    behind = make_shared_config('service_user = "root"')
    spoof = _run_as(
        "cl-bob", behind, "provision", "busybox", "--wait", "--json", env={"SUDO_UID": alice}
    )
    assert spoof.code == 0, spoof.err
    assert json.loads(spoof.out)["owner"] == "cl-bob"


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
        assert await active_count(services[0].store, "racer") == 3
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


async def test_a_refund_lands_on_the_day_the_hours_were_booked(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Booked before midnight UTC, released after it: the unused hours go back to the day they
    were taken from, and today's budget is untouched (it used to be refunded, so a user could
    book 4 lease-hours in one day against a budget of 3)."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from containerlease_tui.models import utcnow

    budgeted = settings.model_copy(deep=True)
    # Room for a lease from 23:59 yesterday to an hour from now, whatever the time of day.
    budgeted.limits.daily_budget_hours = Decimal("48")
    owner = f"night{secrets.token_hex(3)}"
    svc = LeaseService.open(budgeted, user=owner)
    try:
        today = utcnow()
        midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
        booked = midnight - timedelta(minutes=1)  # 23:59 yesterday
        lease = svc.check(ProvisionRequest("busybox", "2h"))
        lease = lease.model_copy(
            update={"created_at": booked, "expires_at": today + timedelta(hours=1)}
        )
        await svc.store.insert(
            lease,
            max_per_user=10,
            max_total=100,
            budget_hours=budgeted.limits.daily_budget_hours,
        )
        prefix = budgeted.redis.key_prefix
        yesterday_key = f"{prefix}:budget:{owner}:{booked:%Y%m%d}"
        today_key = f"{prefix}:budget:{owner}:{today:%Y%m%d}"
        before = Decimal(await redis_client.get(yesterday_key) or "0")
        assert before > 0  # the booking is yesterday's
        await svc.release(lease.id)
        after = Decimal(await redis_client.get(yesterday_key) or "0")
        assert after < before  # the unused hour went back to yesterday
        assert await redis_client.get(today_key) is None  # today's budget untouched
    finally:
        await svc.close()


# --- the activity log between users (issue 18) -------------------------------------------------


def _events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_two_users_events_name_the_actor_and_others_details_are_redacted(
    shared_config: Path,
) -> None:
    alice = str(_provision_as("cl-alice", shared_config, "--duration", "20m")["id"])
    bob = str(_provision_as("cl-bob", shared_config, "--duration", "20m")["id"])
    extended = _run_as("cl-admin", shared_config, "extend", alice, "--by", "5m", "--json")
    assert extended.code == 0, extended.err
    released = _run_as("cl-bob", shared_config, "rm", bob)
    assert released.code == 0, released.err

    seen = _run_as("cl-alice", shared_config, "events", "--json")
    assert seen.code == 0, seen.err
    events = _events(seen.out)
    mine = [e for e in events if e["lease"] == alice]
    theirs = [e for e in events if e["lease"] == bob]
    assert [e["type"] for e in mine] == ["created", "creating", "running", "extended"]
    assert {e["actor"] for e in mine[:3]} == {"cl-alice"}
    assert (mine[3]["actor"], mine[3]["detail"]) == ("cl-admin", "by 5m")  # her lease: shown
    assert [e["type"] for e in theirs] == ["created", "creating", "running", "released"]
    assert {e["actor"] for e in theirs} == {"cl-bob"} and {e["owner"] for e in theirs} == {"cl-bob"}
    # Bob's details are not hers to read (an event without one has nothing to hide).
    assert {e["detail"] for e in theirs} - {""} == {"(redacted)"}
    ids = [str(e["id"]) for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))  # newest last

    admin = _events(_run_as("cl-admin", shared_config, "events", "--json", "--lease", bob).out)
    assert [e["type"] for e in admin] == ["created", "creating", "running", "released"]
    assert admin[0]["detail"].startswith("busybox for 20m")  # type: ignore[union-attr]
    assert admin[-1]["detail"] == "by cl-bob"

    by_admin = _events(_run_as("cl-bob", shared_config, "events", "--json", "-u", "cl-admin").out)
    assert [(e["type"], e["lease"]) for e in by_admin] == [("extended", alice)]
    typed = _run_as("cl-bob", shared_config, "events", "--json", "--type", "released,extended")
    assert [e["type"] for e in _events(typed.out)] == ["extended", "released"]
    recent = _run_as("cl-bob", shared_config, "events", "--json", "--since", "10m")
    assert len(_events(recent.out)) == len(events)

    text = _run_as("cl-bob", shared_config, "events", "--lease", alice)
    assert text.code == 0 and "cl-admin" in text.out and "extended" in text.out
    bad = _run_as("cl-bob", shared_config, "events", "--type", "nonsense")
    assert bad.code == 2 and "unknown event type" in bad.err and "Traceback" not in bad.err
