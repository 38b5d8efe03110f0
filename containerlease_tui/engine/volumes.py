"""Named volumes: create (or find), list, remove, and which containers mount one.

Only the engine calls live here; whose volume is whose (the labels, the name-spacing per owner)
is decided by :mod:`containerlease_tui.labels` and the lease service.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

import aiodocker

from containerlease_tui.backoff import Backoff
from containerlease_tui.engine import _compat
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.parse import as_dict, as_labels, as_str, docker_time
from containerlease_tui.engine.types import VolumeInfo

DISK_USAGE_BUSY: Final = "disk usage operation is already running"
"""The engine measures disk usage for one caller at a time and refuses the others with this
(a 500 or a 409, by engine version), whoever they are: another user's listing, ``docker system
df``, another process of ours."""
DISK_USAGE_TRIES: Final = 4


async def _volume_sizes(docker: aiodocker.Docker) -> dict[str, int]:
    """Each volume's size, waiting briefly for a measurement someone else has running; when the
    engine stays busy the sizes are unknown (an empty map), never an error: a listing does not
    fail because somebody else asked how full the disk is."""
    backoff = Backoff(base=0.05, cap=0.4)
    for attempt in range(DISK_USAGE_TRIES):
        try:
            return await _compat.volume_sizes(docker)
        except aiodocker.DockerError as exc:
            if DISK_USAGE_BUSY not in str(exc.message):
                raise
        if attempt + 1 < DISK_USAGE_TRIES:
            await asyncio.sleep(backoff.next())
    return {}


def _info(data: dict[str, object], size: int | None, users: tuple[str, ...]) -> VolumeInfo:
    return VolumeInfo(
        name=as_str(data.get("Name")),
        labels=as_labels(data.get("Labels")),
        created_at=docker_time(data.get("CreatedAt")),
        size=size,
        users=users,
    )


async def volume_users(conn: Connection, name: str) -> tuple[str, ...]:
    """Ids of the containers, in any state, that mount volume ``name``."""
    async with conn.guard(f"list the containers of volume {name}"):
        found = await conn.client().containers.list(all=True, filters={"volume": [name]})
    return tuple(c.id for c in found)


async def ensure_volume(conn: Connection, name: str, labels: dict[str, str]) -> VolumeInfo:
    """Create volume ``name`` with ``labels``, or find it as it is if it exists already (the
    engine then keeps the labels it had: the caller checks them)."""
    async with conn.guard(f"create volume {name}"):
        docker = conn.client()
        body = {"Name": name, "Labels": labels, "Driver": "local"}
        await _compat.volume_request(docker, "volumes/create", "POST", body=body)
        data = as_dict(await _compat.volume_request(docker, f"volumes/{name}"))
    return _info(data, None, ())


async def inspect_volume(conn: Connection, name: str) -> VolumeInfo | None:
    """Volume ``name`` with the containers that mount it, or None when there is none."""
    async with conn.guard(f"inspect volume {name}"):
        try:
            data = as_dict(await _compat.volume_request(conn.client(), f"volumes/{name}"))
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise
    return _info(data, None, await volume_users(conn, name))


async def list_volumes(conn: Connection, label: list[str]) -> list[VolumeInfo]:
    """The volumes carrying every label of ``label`` (``key`` or ``key=value``), with their
    size (when the engine has measured it) and the containers that mount them."""
    async with conn.guard("list volumes"):
        docker = conn.client()
        filters = json.dumps({"label": label})
        listing = as_dict(
            await _compat.volume_request(docker, "volumes", params={"filters": filters})
        )
        sizes = await _volume_sizes(docker)
    volumes = listing.get("Volumes")
    found: list[VolumeInfo] = []
    for item in volumes if isinstance(volumes, list) else []:
        data = as_dict(item)
        name = as_str(data.get("Name"))
        if name:
            found.append(_info(data, sizes.get(name), await volume_users(conn, name)))
    return found


async def remove_volume(conn: Connection, name: str) -> bool:
    """Remove volume ``name``; True once it is gone (False: it did not exist). A volume some
    container still mounts is refused with an :class:`EngineError` saying so."""
    async with conn.guard(f"remove volume {name}"):
        try:
            await _compat.volume_request(conn.client(), f"volumes/{name}", "DELETE")
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:
                raise EngineError(f"volume {name} is in use by a container") from exc
            raise
    return True
