"""Named volumes and copying files in and out of a lease's container."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from containerlease_tui.archive import ArchiveError, pack, unpack
from containerlease_tui.engine import (
    EngineError,
)
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.errors import (
    InvalidInput,
    LeaseError,
    NotFound,
    QuotaError,
)
from containerlease_tui.labels import (
    LABEL_VOLUME,
    owns_volume,
    volume_engine_name,
    volume_filter,
    volume_labels,
)
from containerlease_tui.models import (
    Lease,
    check_volume_name,
    utcnow,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus

if TYPE_CHECKING:
    pass

from containerlease_tui.service.base import ServiceBase, translated
from containerlease_tui.service.reports import CopyReport, VolumeRow


class VolumeOps(ServiceBase):
    """Named volumes (checked, made, listed, removed) and ``cp``."""

    def _volume_name(self, owner: str, name: str) -> str:
        return volume_engine_name(self.settings.redis.key_prefix, owner, name)

    async def _check_volumes(self, lease: Lease) -> None:
        """Before a lease is recorded: each volume it names is its owner's or does not exist
        yet, and the new ones fit in ``max_volumes_per_user``."""
        if not lease.volumes:
            return
        prefix = self.settings.redis.key_prefix
        new = 0
        with translated():
            for name in lease.volumes:
                engine_name = self._volume_name(lease.owner, name)
                found = await self.engine.inspect_volume(engine_name)
                if found is None:
                    new += 1
                elif not owns_volume(engine_name, found.labels, prefix, lease.owner):
                    raise InvalidInput(
                        f"volume {name} cannot be used: a volume of that name exists and is not "
                        "labelled as yours (ask an admin)",
                        "volumes",
                    )
            if new:
                owned = await self.engine.list_volumes(volume_filter(prefix, lease.owner))
                limit = self.settings.limits.max_volumes_per_user
                if len(owned) + new > limit:
                    raise QuotaError(
                        f"volume limit reached: you have {len(owned)} of {limit} volumes "
                        "(remove one with `containerlease volume rm NAME`)"
                    )

    async def _prepare_volumes(self, lease: Lease) -> None:
        """Create the lease's volumes (or find them) and check, from the engine's own answer,
        that each is its owner's: a volume someone made meanwhile under that name is refused."""
        prefix = self.settings.redis.key_prefix
        for name in lease.volumes:
            engine_name = self._volume_name(lease.owner, name)
            info = await self.engine.ensure_volume(
                engine_name, volume_labels(prefix, lease.owner, name)
            )
            if not owns_volume(engine_name, info.labels, prefix, lease.owner):
                raise EngineError(f"volume {name} is not labelled as {lease.owner}'s: refused")

    async def volumes(self) -> builtins.list[VolumeRow]:
        """This user's named volumes: size, last use, the leases that hold them."""
        prefix = self.settings.redis.key_prefix
        with translated():
            found = await self.engine.list_volumes(volume_filter(prefix, self.user))
            leases = await self.store.list_owner(self.user)
        by_container = {x.docker_id: x for x in leases if x.docker_id}
        now = utcnow()
        rows: builtins.list[VolumeRow] = []
        for info in found:
            if not owns_volume(info.name, info.labels, prefix, self.user):
                continue
            name = info.labels[LABEL_VOLUME]
            held = sorted(
                {by_container[c].id for c in info.users if c in by_container}
                | {x.id for x in leases if x.status.is_active and name in x.volumes}
            )
            used = [
                min(x.ended_at or now, now) for x in leases if name in x.volumes and x.docker_id
            ]
            rows.append(
                VolumeRow(
                    name=name,
                    engine_name=info.name,
                    size=info.size,
                    created_at=info.created_at,
                    last_used=now if held else max(used, default=None),
                    leases=tuple(held),
                )
            )
        return sorted(rows, key=lambda r: r.name)

    async def volume_rm(self, name: str) -> str:
        """Remove this user's volume ``name`` (refused while a lease holds it); its name."""
        try:
            check_volume_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc), "volume") from None
        prefix = self.settings.redis.key_prefix
        engine_name = self._volume_name(self.user, name)
        with translated():
            info = await self.engine.inspect_volume(engine_name)
            if info is None or not owns_volume(engine_name, info.labels, prefix, self.user):
                raise NotFound(f"you have no volume {name}")
            holders = [
                x.id
                for x in await self.store.list_owner(self.user)
                if x.status.is_active and name in x.volumes
            ]
            if info.users or holders:
                which = ", ".join(holders) or f"{len(info.users)} container(s)"
                raise InvalidInput(f"volume {name} is in use by {which}: refused", "volume")
            await self.engine.remove_volume(engine_name)
        return name

    # --- copying files ----------------------------------------------------------------

    async def copy_in(self, ref: str, source: Path, dest: str) -> CopyReport:
        """Copy host file or folder ``source`` into folder ``dest`` of the lease's container
        (running or stopped), through the engine's archive API."""
        path = self.policy.check_copy_path(dest)
        lease = await self.container_for(ref, "copy files into")
        assert lease.docker_id is not None
        try:
            packed = await asyncio.to_thread(
                pack, source, limit=self.settings.limits.max_copy_bytes
            )
        except ArchiveError as exc:
            raise InvalidInput(str(exc), "source") from None
        with translated():
            await self.engine.put_archive(await self._own(lease), path, packed.data)
        return CopyReport(lease, packed.files, packed.size, [source.name])

    async def copy_out(
        self,
        ref: str,
        source: str,
        dest: Path,
        on_progress: Callable[[int], None] | None = None,
    ) -> CopyReport:
        """Copy ``source`` (a file or folder) of the lease's container to host path ``dest``;
        the archive is untrusted: nothing is written outside ``dest``."""
        path = self.policy.check_copy_path(source)
        lease = await self.container_for(ref, "copy files out of")
        assert lease.docker_id is not None
        with translated():
            data = await self.engine.get_archive(
                await self._own(lease),
                path,
                limit=self.settings.limits.max_copy_bytes,
                on_progress=on_progress,
            )
        try:
            names = await asyncio.to_thread(unpack, data, dest)
        except ArchiveError as exc:
            raise LeaseError(str(exc)) from None
        return CopyReport(lease, len(names), len(data), names)
