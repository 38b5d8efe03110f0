"""Who is acting: the OS user behind this process, and whether they are an admin."""

from __future__ import annotations

import grp
import os
import pwd
import re
from typing import TYPE_CHECKING

from containerlease_tui.config import Settings
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.models import (
    OWNER_PATTERN,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus

if TYPE_CHECKING:
    pass


def current_user(settings: Settings | None = None) -> str:
    """The OS user acting, from the uid (``$USER`` can say anything).

    Behind a ``sudo`` rule (``[security] service_user``): when this process runs as the service
    user and ``SUDO_UID`` is set (sudo sets it itself, whatever the caller's environment held),
    the acting user is the one who ran sudo. Anywhere else ``SUDO_UID`` is ignored. An unknown
    uid is named ``uid<N>``, and so is an account whose name a lease record could not hold (see
    ``models.OWNER_PATTERN``: no controls, spaces or markup).
    """
    uid = os.getuid()
    service = settings.security.service_user if settings is not None else None
    sudo_uid = os.environ.get("SUDO_UID", "")
    if service and re.fullmatch(r"[0-9]{1,10}", sudo_uid) and int(sudo_uid) < 2**32:
        try:
            is_service = pwd.getpwnam(service).pw_uid == uid
        except KeyError:
            is_service = False
        if is_service:
            uid = int(sudo_uid)
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid{uid}"
    return name if OWNER_PATTERN.fullmatch(name) else f"uid{uid}"


def is_admin(user: str, settings: Settings) -> bool:
    """In ``[security] admins``, or a member of ``[security] admin_group``."""
    sec = settings.security
    if user in sec.admins:
        return True
    if not sec.admin_group:
        return False
    try:
        group = grp.getgrnam(sec.admin_group)
    except KeyError:
        return False
    if user in group.gr_mem:
        return True
    try:
        return pwd.getpwnam(user).pw_gid == group.gr_gid
    except KeyError:
        return False
