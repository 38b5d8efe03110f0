"""Issue 17's rules without services: request validation (ports, cmd, workdir, volumes), the
volume name-spacing, the create body, reading published ports, and packing for ``cp``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerlease_tui.archive import ArchiveError, pack, unpack
from containerlease_tui.config import DockerSettings, ImageSpec, Settings
from containerlease_tui.engine.client import create_body
from containerlease_tui.engine.parse import published_ports
from containerlease_tui.engine.types import ContainerSpec
from containerlease_tui.errors import InvalidInput
from containerlease_tui.labels import (
    owns_volume,
    volume_engine_name,
    volume_labels,
    volume_namespace,
)
from containerlease_tui.models import Lease
from containerlease_tui.policy import LeasePolicy, ProvisionRequest


@pytest.fixture
def policy() -> LeasePolicy:
    settings = Settings(
        images={
            "web": ImageSpec(ref="busybox:1", hourly_rate="0.1", ports=["8080"], workdir="/srv"),
        },
        limits={"max_ports": 3, "max_volumes_per_user": 2},
    )
    return LeasePolicy(settings)


def test_ports_are_normalised_merged_and_bounded(policy: LeasePolicy) -> None:
    checked = policy.validate(ProvisionRequest("web", ports=["9090", "8080/tcp", "53/UDP"]))
    assert checked.ports == ["8080/tcp", "9090/tcp", "53/udp"]
    lease = policy.pending_lease(ProvisionRequest("web"), owner="alice", host="h")
    assert lease.ports == {"8080/tcp": None}
    with pytest.raises(InvalidInput, match="too many ports"):
        policy.validate(ProvisionRequest("web", ports=["1", "2", "3"]))
    for bad in ["0", "65536", "x", "80/icmp", "-1", "80/"]:
        with pytest.raises(InvalidInput, match="invalid port"):
            policy.validate(ProvisionRequest("web", ports=[bad]))


def test_cmd_and_workdir(policy: LeasePolicy) -> None:
    checked = policy.validate(ProvisionRequest("web", cmd="sh -c 'echo a b'", workdir="/tmp/"))
    assert checked.cmd == ["sh", "-c", "echo a b"] and checked.workdir == "/tmp"
    assert policy.validate(ProvisionRequest("web", cmd="  ")).cmd is None
    bad: list[str | list[str]] = ["a\x00b", "'open", "x" * 5000, ["", "x"]]
    for cmd in bad:
        with pytest.raises(InvalidInput, match="command"):
            policy.validate(ProvisionRequest("web", cmd=cmd))
    for workdir in ["rel", "/a/../b", "/a/./b", "//x", "/a b", "/a:b", "/" + "x" * 300]:
        with pytest.raises(InvalidInput, match="invalid workdir"):
            policy.validate(ProvisionRequest("web", workdir=workdir))


def test_volumes(policy: LeasePolicy) -> None:
    checked = policy.validate(ProvisionRequest("web", volumes=["work:/work", "cache:/c/"]))
    assert checked.volumes == {"work": "/work", "cache": "/c"}
    cases = {
        "use NAME:/container/path": ["work"],
        "invalid volume name": ["Work:/w"],
        "invalid volume path": ["w:rel"],
        "over the container's /": ["w:/"],
        "mounted twice": ["w:/a", "w:/b"],
        "two mounts": ["a:/x", "b:/x"],
        "too many volumes": ["a:/a", "b:/b", "c:/c"],
    }
    for text, volumes in cases.items():
        with pytest.raises(InvalidInput, match=text):
            policy.validate(ProvisionRequest("web", volumes=volumes))


def test_records_refuse_what_requests_refuse() -> None:
    base = {"name": "x", "owner": "alice", "image": "web", "image_ref": "busybox:1"}
    base |= {"expires_at": "2030-01-01T00:00:00+00:00", "hourly_rate": "0"}
    for field, value in [
        ("ports", {"8080/icmp": None}),
        ("ports", {"8080/tcp": "\x1b[31m:1"}),
        ("cmd", ["a\x00"]),
        ("workdir", "/a/../b"),
        ("volumes", {"../x": "/x"}),
    ]:
        with pytest.raises(ValueError):
            Lease.model_validate({**base, field: value})


def test_volume_names_are_per_owner_and_checked_by_labels() -> None:
    alice = volume_engine_name("cl", "alice", "work")
    bob = volume_engine_name("cl", "bob", "work")
    assert alice != bob and alice.startswith(volume_namespace("cl", "alice"))
    assert volume_engine_name("other", "alice", "work") != alice
    labels = volume_labels("cl", "alice", "work")
    assert owns_volume(alice, labels, "cl", "alice")
    assert not owns_volume(alice, labels, "cl", "bob")
    assert not owns_volume(bob, labels, "cl", "bob")  # bob's name, alice's labels
    assert not owns_volume(alice, {}, "cl", "alice")


def test_create_body_publishes_on_the_address_and_mounts_volumes_only() -> None:
    spec = ContainerSpec(
        name="n",
        image_ref="busybox:1",
        cmd=["sleep", "1"],
        env={},
        labels={},
        cpus=1,
        memory=64 * 1024**2,
        pids=64,
        cap_add=[],
        binds=[],
        network="default",
        ports=["8080/tcp"],
        publish_address="127.0.0.1",
        workdir="/srv",
        volumes={"clv-x-work": "/work"},
    )
    body = create_body(spec)
    host = body["HostConfig"]
    assert isinstance(host, dict)
    assert body["WorkingDir"] == "/srv" and body["ExposedPorts"] == {"8080/tcp": {}}
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert host["Mounts"] == [
        {"Type": "volume", "Source": "clv-x-work", "Target": "/work", "ReadOnly": False}
    ]
    assert host["CapDrop"] == ["ALL"] and host["Privileged"] is False


def test_publish_address_must_be_an_address() -> None:
    assert DockerSettings(publish_address="::1").publish_address == "::1"
    with pytest.raises(ValueError, match="IP address"):
        DockerSettings(publish_address="localhost")


def test_published_ports_are_read_safely() -> None:
    ports = {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}],
        "9090/tcp": [{"HostIp": "::1", "HostPort": "49154"}],
        "53/udp": None,
        "1/tcp": [{"HostIp": "1.2.3.4", "HostPort": "x\x1b"}],
    }
    assert published_ports(ports) == {"8080/tcp": "127.0.0.1:49153", "9090/tcp": "[::1]:49154"}
    assert published_ports("junk") == {}


def test_pack_refuses_links_out_and_special_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    (src / "in").symlink_to("a")
    packed = pack(src, limit=1000)
    assert packed.files == 1 and packed.size == 1
    with pytest.raises(ArchiveError, match="copy limit"):
        pack(src, limit=0)
    (src / "out").symlink_to("../../etc")
    with pytest.raises(ArchiveError, match="outside"):
        pack(src, limit=1000)
    (src / "out").unlink()
    os.mkfifo(src / "fifo")
    with pytest.raises(ArchiveError, match="not a regular file"):
        pack(src, limit=1000)
    with pytest.raises(ArchiveError, match="no such file"):
        pack(tmp_path / "missing", limit=1000)


def test_pack_then_unpack_round_trip_and_rename(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("f")
    data = pack(src, limit=1000).data
    out = tmp_path / "out"
    out.mkdir()
    assert "src/sub/f" in unpack(data, out)
    assert (out / "src" / "sub" / "f").read_text() == "f"
    unpack(data, tmp_path / "renamed")
    assert (tmp_path / "renamed" / "sub" / "f").read_text() == "f"
    with pytest.raises(ArchiveError, match="no such folder"):
        unpack(data, tmp_path / "no" / "where")
