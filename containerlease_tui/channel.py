"""The message channel: a private host folder per lease, bind-mounted into its container at
:data:`MOUNT`, where the container's program listens on :data:`SOCKET_NAME`.

One exchange (``containerlease send``): connect, send one JSON message as a line, close our
side, read one line of JSON back, all within a timeout.

The folder is made here, from the installation's channel root and the lease id (a validated
pattern), never from a record or user input, and removed with the lease. Whatever the container
puts in it is hostile: the socket may have been swapped for a symlink to another socket on the
host (the engine's, another user's agent), so after connecting, the peer's process must be in
the lease's container (its cgroup names the container id) before a byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from containerlease_tui.errors import LeaseError

MOUNT: Final = "/run/containerlease"
"""Where the lease's channel folder appears in its container."""
SOCKET_NAME: Final = "channel.sock"
SOCKET_PATH: Final = f"{MOUNT}/{SOCKET_NAME}"
ENV_VAR: Final = "CONTAINERLEASE_CHANNEL"
"""Set in the container to :data:`SOCKET_PATH`: where its program should listen."""
MAX_MESSAGE: Final = 64 * 1024
MAX_REPLY: Final = 1024 * 1024
_LEASE_ID = re.compile(r"[a-z0-9]{4,32}")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")


class ChannelError(LeaseError):
    """An exchange that did not happen or did not give a JSON reply (exit 1, one line)."""


@dataclass(frozen=True)
class ChannelReply:
    """The container's answer to one message, and how long it took."""

    reply: object
    """The reply, parsed from JSON."""
    seconds: float


def folder_for(root: Path, lease_id: str) -> Path:
    """The channel folder of ``lease_id`` under ``root`` (the id is checked: it names a path)."""
    if not _LEASE_ID.fullmatch(lease_id):
        raise ValueError(f"not a lease id: {lease_id[:40]!r}")
    return root / lease_id


def _private_root(root: Path) -> None:
    """``root`` exists, is a real folder of ours and nobody else may enter it: the lease
    folders inside are open to any user of their container, so this one is the fence."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ChannelError(f"channel folder {root} is not a folder of this user")
    if info.st_mode & 0o077:
        os.chmod(root, 0o700)


def prepare(root: Path, lease_id: str) -> Path:
    """Make the lease's channel folder (empty, new) and return its host path.

    Mode 0777 inside a 0700 root: the container's program may run as any user, and no host user
    but us can reach it through the root.
    """
    _private_root(root)
    folder = folder_for(root, lease_id)
    discard(root, lease_id)  # an earlier try's leftovers: never reuse what a container wrote
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o777)  # after mkdir: the umask would have taken bits away
    return folder


def discard(root: Path, lease_id: str) -> None:
    """Remove the lease's channel folder and what its container left there, never following a
    link out of it; best effort (a file its container made as another user may stay)."""
    try:
        folder = folder_for(root, lease_id)
    except ValueError:
        return
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(os.lstat(folder).st_mode):
            shutil.rmtree(folder, ignore_errors=True)  # fd-based: symlinks are unlinked
        else:
            folder.unlink()


def folders(root: Path) -> dict[str, float]:
    """The lease folders under ``root``: lease id → when the folder was made (``st_mtime``)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return {}
    found: dict[str, float] = {}
    for entry in entries:
        if _LEASE_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                found[entry.name] = entry.stat(follow_symlinks=False).st_mtime
    return found


class _HasSockopt(Protocol):
    """A socket, or asyncio's ``TransportSocket`` wrapper of one."""

    def getsockopt(self, level: int, optname: int, buflen: int) -> bytes: ...


def _peer_pid(sock: _HasSockopt) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return int(pid)


def peer_in_container(sock: _HasSockopt, container_id: str) -> bool:
    """Whether the process at the other end of ``sock`` runs in container ``container_id``:
    the kernel's peer pid, then that process's cgroup, which the engine names after the
    container (``/docker/<id>``, ``docker-<id>.scope``)."""
    if not _CONTAINER_ID.fullmatch(container_id):
        return False
    pid = _peer_pid(sock)
    if pid <= 0:
        return False
    try:
        groups = Path(f"/proc/{pid}/cgroup").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    pattern = re.compile(rf"(^|[/-]){re.escape(container_id)}[0-9a-f]*(\.scope)?(/|$)")
    return any(pattern.search(line.split(":", 2)[-1]) for line in groups.splitlines())


def _socket_in(folder: Path) -> Path:
    path = folder / SOCKET_NAME
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ChannelError(
            f"no channel: nothing listens on {SOCKET_PATH} in the container"
        ) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise ChannelError(f"no channel: {SOCKET_PATH} in the container is not a socket")
    return path


async def _connect(
    folder: Path, container_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = _socket_in(folder)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_REPLY + 1)
    except ConnectionRefusedError:
        raise ChannelError(f"no channel: nothing accepts connections on {SOCKET_PATH}") from None
    except PermissionError:
        raise ChannelError(
            f"no channel: {SOCKET_PATH} is not writable for this user (the container's "
            "program should make it 0666)"
        ) from None
    except OSError as exc:
        raise ChannelError(f"no channel: {exc.strerror or exc}") from None
    sock = writer.get_extra_info("socket")
    if sock is None or not peer_in_container(sock, container_id):
        writer.close()
        raise ChannelError(
            f"refused: the process behind {SOCKET_PATH} is not in the lease's container"
        )
    return reader, writer


async def probe(folder: Path, container_id: str) -> bool:
    """Whether the container's program accepts a connection now (``status``: connected)."""
    try:
        _reader, writer = await asyncio.wait_for(_connect(folder, container_id), 2.0)
    except (ChannelError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def encode(message: object) -> bytes:
    """One message as its wire line (compact JSON and a newline); :class:`ChannelError` when
    it is too long."""
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if len(line) > MAX_MESSAGE:
        raise ChannelError(f"message too long: {len(line)} bytes (at most {MAX_MESSAGE})")
    return line


async def exchange(folder: Path, container_id: str, message: object, within: float) -> ChannelReply:
    """Send ``message`` to the container's program and return its JSON reply."""
    line = encode(message)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(within):
            reader, writer = await _connect(folder, container_id)
            try:
                writer.write(line)
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()  # one message: the program may read to the end
                raw = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        raise ChannelError(f"no reply within {within:g}s") from None
    except ValueError:  # readline past the limit
        raise ChannelError(f"reply too long (over {MAX_REPLY} bytes)") from None
    except (ConnectionError, OSError) as exc:
        raise ChannelError(f"the channel closed: {exc.strerror or exc}") from None
    if not raw.strip():
        raise ChannelError("the container's program closed the channel without replying")
    try:
        reply: object = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ChannelError("the reply is not JSON") from None
    return ChannelReply(reply, loop.time() - started)
