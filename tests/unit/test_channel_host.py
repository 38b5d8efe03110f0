"""The message channel's host side without a container: where folders go and with which
permissions, what is refused before anything connects, and the peer check on real sockets
(the test process is in no container, so it is never a lease's peer)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from containerlease_tui import channel
from containerlease_tui.channel import ChannelError
from containerlease_tui.config import DockerSettings, ImageSpec, Settings
from containerlease_tui.errors import InvalidInput
from containerlease_tui.policy import LeasePolicy, ProvisionRequest


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "ABCD", "x" * 40, "..", "abc"])
def test_a_folder_is_named_by_a_lease_id_only(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a lease id"):
        channel.folder_for(tmp_path, bad)
    channel.discard(tmp_path, bad)  # refused quietly: nothing outside the root is touched


def test_prepare_fences_the_root_and_opens_the_lease_folder(tmp_path: Path) -> None:
    root = tmp_path / "channels"
    os.umask(0o022)
    folder = channel.prepare(root, "k7m2x9qa")
    assert folder == root / "k7m2x9qa"
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o777
    # What a container left behind, a link out among it, goes; the link's target stays.
    outside = tmp_path / "keep.txt"
    outside.write_text("mine")
    (folder / "link").symlink_to(outside)
    (folder / "sub").mkdir()
    (folder / "sub" / "f").write_text("x")
    again = channel.prepare(root, "k7m2x9qa")  # a new try starts from an empty folder
    assert list(again.iterdir()) == []
    channel.discard(root, "k7m2x9qa")
    assert not folder.exists() and outside.read_text() == "mine"


def test_a_root_open_to_others_is_closed_and_a_link_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "open"
    root.mkdir(mode=0o755)
    root.chmod(0o777)
    channel.prepare(root, "abcd1234")
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    with pytest.raises(ChannelError, match="not a folder of this user"):
        channel.prepare(link, "abcd1234")
    assert list(elsewhere.iterdir()) == []


def test_a_message_is_one_bounded_line() -> None:
    assert channel.encode({"command": "ping"}) == b'{"command":"ping"}\n'
    assert channel.encode("a\nb") == b'"a\\nb"\n'  # JSON escapes the newline: one line
    with pytest.raises(ChannelError, match="message too long"):
        channel.encode("x" * channel.MAX_MESSAGE)


async def test_absent_or_not_a_socket(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="nothing listens"):
        await channel.exchange(tmp_path, "a" * 64, {}, 1.0)
    (tmp_path / channel.SOCKET_NAME).write_text("not a socket")
    with pytest.raises(ChannelError, match="is not a socket"):
        await channel.exchange(tmp_path, "a" * 64, {}, 1.0)
    assert await channel.probe(tmp_path, "a" * 64) is False


async def test_a_listener_outside_the_container_gets_no_byte(tmp_path: Path) -> None:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read())
        writer.close()

    server = await asyncio.start_unix_server(handle, path=str(tmp_path / channel.SOCKET_NAME))
    async with server:
        with pytest.raises(ChannelError, match="not in the lease's container"):
            await channel.exchange(tmp_path, "a" * 64, {"secret": 1}, 5.0)
        assert await channel.probe(tmp_path, "a" * 64) is False
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
    assert got == [b"", b""]


def test_the_peer_check_reads_the_cgroup_of_the_peer() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert channel.peer_in_container(left, "a" * 64) is False  # we are in no container
        assert channel.peer_in_container(left, "not-hex") is False


def _policy(url: str) -> LeasePolicy:
    image = ImageSpec(ref="busybox:1", hourly_rate="0.01", channel=True)  # type: ignore[arg-type]
    return LeasePolicy(Settings(docker=DockerSettings(url=url), images={"chan": image}))


def test_a_channel_needs_the_engine_on_this_machine() -> None:
    req = ProvisionRequest(image="chan", duration="1h")
    assert _policy("unix:///var/run/docker.sock").pending_lease(req, owner="a", host="h").channel
    with pytest.raises(InvalidInput, match="needs the Docker engine on this machine") as caught:
        _policy("tcp://10.0.0.2:2376").validate(req)
    assert caught.value.field == "image"
    over = ProvisionRequest(image="chan", duration="1h", volumes=["work:/run/containerlease"])
    with pytest.raises(InvalidInput, match="message channel's place"):
        _policy("unix:///var/run/docker.sock").validate(over)


def test_the_channel_root_defaults_to_the_users_state_folder() -> None:
    assert DockerSettings().channels().parts[-2:] == ("containerlease", "channels")
    assert DockerSettings(channel_root=Path("/srv/ch")).channels() == Path("/srv/ch")
    with pytest.raises(ValueError, match="absolute"):
        DockerSettings(channel_root=Path("rel"))
