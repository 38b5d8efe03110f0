"""Hardening on the real engine: per-image overrides from the admin's config, and bind mounts
that try to leave the allowlist through symlinks and ``..``.

Each setting is checked twice: on ``docker inspect`` and from inside the container, where the
kernel reports what the process really got.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiodocker
import pytest

from containerlease_tui.config import Settings, load_settings
from containerlease_tui.engine import LABEL_INSTANCE
from containerlease_tui.leases import (
    InvalidInput,
    LeaseService,
    ProvisionFailed,
    ProvisionRequest,
)
from containerlease_tui.models import LeaseStatus

pytestmark = pytest.mark.usefixtures("cleanup_containers")

# Bit numbers from linux/capability.h, for the capabilities these tests use.
CAP_BITS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "NET_BIND_SERVICE": 10,
    "SYS_CHROOT": 18,
}
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def _mask(caps: list[str]) -> int:
    return sum(1 << CAP_BITS[c] for c in caps)


def _load(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Settings:
    path.write_text(text)
    monkeypatch.setenv("CONTAINERLEASE_CONFIG", str(path))
    return load_settings()


async def _sh(docker: aiodocker.Docker, cid: str, script: str) -> str:
    """``script``'s stdout, run in the container."""
    execution = await docker.containers.container(cid).exec(
        ["/bin/sh", "-c", script], stdout=True, stderr=True
    )
    chunks: list[bytes] = []
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            if message.stream == 1:
                chunks.append(message.data)
    return b"".join(chunks).decode()


async def _proc1(docker: aiodocker.Docker, cid: str) -> dict[str, str]:
    """PID 1's name, ``NoNewPrivs`` and ``CapEff``, and the container's pids limit."""
    text = await _sh(
        docker,
        cid,
        "echo comm=$(cat /proc/1/comm);"
        " grep -E '^(NoNewPrivs|CapEff):' /proc/1/status | tr -d ' \\t' | tr : =;"
        " echo pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null"
        " || cat /sys/fs/cgroup/pids/pids.max 2>/dev/null)",
    )
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_per_image_hardening_overrides_show_on_inspect(
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker: aiodocker.Docker,
    test_image: str,
    tmp_path: Path,
) -> None:
    loose_image = f"""
[images.loose]
ref = "{test_image}"
hourly_rate = "0.1"
cmd = {json.dumps(KEEPALIVE)}
memory = "64m"
cpus = 0.5
pids = 100
cap_add = ["cap_net_bind_service", "SYS_CHROOT"]
init = false
no_new_privileges = false
"""
    settings = _load(monkeypatch, tmp_path / "loose.toml", config_file.read_text() + loose_image)
    assert settings.images["loose"].cap_add == ["NET_BIND_SERVICE", "SYS_CHROOT"]
    svc = LeaseService.open(settings, user="alice")
    try:
        loose = await svc.provision(ProvisionRequest("loose", "10m"))
        strict = await svc.provision(ProvisionRequest("busybox", "10m"))
    finally:
        await svc.close()
    assert loose.docker_id and strict.docker_id

    host = (await docker.containers.container(loose.docker_id).show())["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == ["NET_BIND_SERVICE", "SYS_CHROOT"]
    assert host["PidsLimit"] == 100
    assert host["Init"] is False
    assert "no-new-privileges" not in (host["SecurityOpt"] or [])
    assert host["Privileged"] is False  # not overridable
    assert host["Memory"] == 64 * 1024**2
    kernel = await _proc1(docker, loose.docker_id)
    assert kernel["comm"] == "sh"  # no init: the command is PID 1
    assert kernel["NoNewPrivs"] == "0"
    assert int(kernel["CapEff"], 16) == _mask(["NET_BIND_SERVICE", "SYS_CHROOT"])
    if kernel.get("pids"):
        assert kernel["pids"] == "100"

    # The other image keeps every default.
    host = (await docker.containers.container(strict.docker_id).show())["HostConfig"]
    allowlist = settings.security.cap_allowlist
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(allowlist)
    assert host["PidsLimit"] == 64
    assert host["Init"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    kernel = await _proc1(docker, strict.docker_id)
    assert kernel["comm"] != "sh" and "init" in kernel["comm"]  # docker-init reaps zombies
    assert kernel["NoNewPrivs"] == "1"
    assert int(kernel["CapEff"], 16) == _mask(allowlist)
    if kernel.get("pids"):
        assert kernel["pids"] == "64"


def _with_binds(
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    binds: list[str],
    allowed: Path,
) -> Settings:
    text = config_file.read_text().replace(
        "pids = 64\n", f"pids = 64\nbinds = {json.dumps(binds)}\n", 1
    )
    text += f'\n[security]\nbind_allowlist = ["{allowed}"]\n'
    return _load(monkeypatch, tmp_path / "binds.toml", text)


async def _none_left(docker: aiodocker.Docker, settings: Settings) -> bool:
    found = await docker.containers.list(
        all=True, filters={"label": [f"{LABEL_INSTANCE}={settings.redis.key_prefix}"]}
    )
    return found == []


async def test_bind_mounts_cannot_leave_the_allowlist_through_links(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    allowed = tmp_path / "shared"
    (allowed / "data").mkdir(parents=True)
    (allowed / "escape").symlink_to("/etc")  # under the allowed folder, pointing outside
    (allowed / "inside").symlink_to(allowed / "data")
    (tmp_path / "outside").mkdir()
    escapes = [
        f"{allowed}/escape:/x:ro",
        f"{allowed}/escape/ssh:/x",
        f"{allowed}/../outside:/x",
        f"{allowed}/data/../../outside:/x:rw",
        f"{allowed}-sibling:/x",  # a prefix of the name is not a parent folder
    ]
    for bind in escapes:
        settings = _with_binds(config_file, monkeypatch, tmp_path, [bind], allowed)
        svc = LeaseService.open(settings, user="alice")
        try:
            with pytest.raises(InvalidInput, match="not under an allowed folder"):
                await svc.provision(ProvisionRequest("busybox", "10m"))
            assert await svc.list(all_users=True) == [], bind
        finally:
            await svc.close()
        assert await _none_left(docker, settings), bind

    # A link that stays inside is fine, and the engine is handed the resolved path.
    settings = _with_binds(config_file, monkeypatch, tmp_path, [f"{allowed}/inside:/d:ro"], allowed)
    svc = LeaseService.open(settings, user="alice")
    try:
        lease = await svc.provision(ProvisionRequest("busybox", "10m"))
    finally:
        await svc.close()
    assert lease.docker_id
    info = await docker.containers.container(lease.docker_id).show()
    assert info["HostConfig"]["Binds"] == [f"{allowed}/data:/d:ro"]


async def test_a_symlink_loop_is_refused(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    allowed = tmp_path / "shared"
    allowed.mkdir()
    (allowed / "loop").symlink_to(allowed / "loop")
    settings = _with_binds(config_file, monkeypatch, tmp_path, [f"{allowed}/loop:/x"], allowed)
    svc = LeaseService.open(settings, user="alice")
    try:
        # Python 3.11/3.12 report the loop when resolving; later ones leave it to the engine,
        # which cannot mount it. Either way nothing runs.
        with pytest.raises((InvalidInput, ProvisionFailed)):
            await svc.provision(ProvisionRequest("busybox", "10m"))
        assert all(x.status.is_terminal for x in await svc.list(all_users=True))
    finally:
        await svc.close()
    assert await _none_left(docker, settings)


async def test_a_folder_swapped_for_a_symlink_after_submit_is_refused(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    """Checked again right before the container is made, not only when the lease is asked for."""
    allowed = tmp_path / "shared"
    (allowed / "data").mkdir(parents=True)
    settings = _with_binds(config_file, monkeypatch, tmp_path, [f"{allowed}/data:/d:ro"], allowed)
    svc = LeaseService.open(settings, user="alice")
    try:
        lease = await svc.submit(ProvisionRequest("busybox", "10m"))
        (allowed / "data").rmdir()
        (allowed / "data").symlink_to("/etc")
        with pytest.raises(ProvisionFailed, match="not under an allowed folder"):
            await svc.complete(lease.id)
        failed = await svc.store.get(lease.id)
        assert failed is not None and failed.status is LeaseStatus.FAILED
        assert failed.error and "not under an allowed folder" in failed.error
    finally:
        await svc.close()
    assert await _none_left(docker, settings)
