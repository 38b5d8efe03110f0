"""Who is calling: the uid the kernel reports for the connection (``SO_PEERCRED``).

Nothing the client sends (environment, headers, body) takes part: the account name comes from
the password database for that uid, admin rights from the daemon's own ``[security]``.
"""

from __future__ import annotations

import pwd
import socket
import struct
from dataclasses import dataclass

from containerlease_tui.config import Settings
from containerlease_tui.leases import is_admin
from containerlease_tui.models import OWNER_PATTERN

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel saw it at connect()."""

    pid: int
    uid: int
    gid: int
    user: str
    admin: bool


class NoPeer(Exception):
    """The connection carries no credentials (not a unix socket, or already closed)."""


def user_name(uid: int) -> str:
    """The account name of ``uid``; ``uid<N>`` when unknown or unfit for a lease record."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid{uid}"
    return name if OWNER_PATTERN.fullmatch(name) else f"uid{uid}"


def peer_of(sock: socket.socket | None, settings: Settings) -> Peer:
    """The caller on ``sock``; raises :class:`NoPeer` when the kernel cannot say."""
    if sock is None or sock.family != socket.AF_UNIX:
        raise NoPeer("no unix socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise NoPeer(str(exc)) from None
    pid, uid, gid = _UCRED.unpack(raw)
    if uid < 0:
        raise NoPeer("no peer credentials")
    user = user_name(uid)
    return Peer(pid, uid, gid, user, is_admin(user, settings))
