"""The daemon's socket: refuse an unsafe path, make the folder, bind with the right mode.

Unsafe: the socket or its folder a symlink; the folder (or any folder above it) writable by
someone other than root and the daemon's user without the sticky bit; the folder not owned by
root or the daemon's user; something that is not a socket already at the path; another daemon
answering there. Any of these would let another account swap the socket or its folder and
answer as the daemon (or take its place).
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import stat
from pathlib import Path


class UnsafeSocket(Exception):
    """The socket path cannot be used safely; one line saying why."""


def _trusted_owner(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def check_folder(folder: Path) -> None:
    """Refuse a folder (and ancestors) that someone else could change."""
    current = folder
    while True:
        try:
            st = os.lstat(current)
        except OSError as exc:
            raise UnsafeSocket(f"cannot check {current}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeSocket(f"{current} is a symlink: refusing to put the socket under it")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeSocket(f"{current} is not a folder")
        if not _trusted_owner(st):
            raise UnsafeSocket(f"{current} is owned by uid {st.st_uid}, not root or the daemon")
        writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if current == folder and writable_by_others:
            raise UnsafeSocket(
                f"{current} is writable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                "anyone could replace the socket"
            )
        if writable_by_others and not st.st_mode & stat.S_ISVTX:
            raise UnsafeSocket(
                f"{current} is writable by others without the sticky bit: "
                "anyone could swap the folders below it"
            )
        if current.parent == current:
            return
        current = current.parent


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def prepare(path: Path) -> None:
    """Make the folder (0755) if missing, check it, and clear a stale socket at ``path``."""
    if not path.is_absolute():
        raise UnsafeSocket(f"socket path {path} is not absolute")
    folder = path.parent
    if not os.path.lexists(folder):
        try:
            os.makedirs(folder, mode=0o755)
        except OSError as exc:
            raise UnsafeSocket(f"cannot create {folder}: {exc.strerror}") from None
        os.chmod(folder, 0o755)  # whatever the umask made of it
    check_folder(folder)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeSocket(f"{path} is a symlink: refusing to use it")
    if not stat.S_ISSOCK(st.st_mode):
        raise UnsafeSocket(f"{path} exists and is not a socket: refusing to replace it")
    if _answers(path):
        raise UnsafeSocket(f"another daemon already answers on {path}")
    os.unlink(path)  # a stale socket of ours: the folder is trusted, so it is ours to clear


def bind(path: Path, mode: int, group: str | None) -> socket.socket:
    """A listening unix socket at ``path``: never more open than ``mode`` even for an instant
    (bound under a umask that leaves only the owner), then given ``group`` and ``mode``."""
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UnsafeSocket(f"socket_group {group!r} does not exist") from None
    prepare(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise UnsafeSocket(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        if gid != -1:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
        sock.listen(256)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise UnsafeSocket(f"cannot set up {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
