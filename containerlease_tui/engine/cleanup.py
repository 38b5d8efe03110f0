"""The one way to remove a lease's containers: by the id on record and by label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.labels import lease_of


@dataclass(frozen=True)
class Removal:
    """What :func:`remove_lease_containers` did."""

    removed: tuple[str, ...]
    """Ids no longer there (including ones that were already gone)."""
    pending: tuple[str, ...] = ()
    """Ids whose removal the daemon still had under way when the engine stopped waiting."""

    @property
    def done(self) -> bool:
        return not self.pending


async def remove_lease_containers(
    engine: Runtime,
    lease_id: str,
    docker_id: str | None,
    prefix: str,
    *,
    labelled: Iterable[str] | None = None,
) -> Removal:
    """Remove a lease's containers: ``docker_id`` (the one on record, if any), then every
    container of installation ``prefix`` labelled with ``lease_id``.

    ``labelled`` gives the labelled ids when the caller already listed them (the reaper shares
    one listing between its workers); otherwise the engine is asked. The listing happens before
    any removal, so a failed listing removes nothing. Raises ``EngineError``.
    """
    if labelled is None:
        listed = await engine.list_leased(prefix)
        labelled = [info.id for info in listed if lease_of(info.labels, prefix) == lease_id]
    ids = list(dict.fromkeys([*([docker_id] if docker_id else []), *labelled]))  # in order, once
    removed: list[str] = []
    pending: list[str] = []
    for cid in ids:
        (removed if await engine.remove(cid) else pending).append(cid)
    return Removal(tuple(removed), tuple(pending))
