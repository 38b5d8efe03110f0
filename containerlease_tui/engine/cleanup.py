"""The one way to remove a lease's containers: by the id on record and by label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from containerlease_tui.engine.ownership import NotOurs, own_container
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.labels import lease_of


@dataclass(frozen=True)
class Removal:
    """What :func:`remove_lease_containers` did."""

    removed: tuple[str, ...]
    """Ids no longer there (including ones that were already gone)."""
    pending: tuple[str, ...] = ()
    """Ids whose removal the daemon still had under way when the engine stopped waiting."""
    refused: NotOurs | None = None
    """The record's ``docker_id`` named a container that is not this lease's: left alone."""

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
    """Remove a lease's containers: ``docker_id`` (the one on record, if any, once its labels
    confirm it is this lease's: else it is left alone and named in ``refused``), then every
    container of installation ``prefix`` labelled with ``lease_id``.

    ``labelled`` gives the labelled ids when the caller already listed them (the reaper shares
    one listing between its workers); otherwise the engine is asked. The listing happens before
    any removal, so a failed listing removes nothing. Raises ``EngineError``.
    """
    if labelled is None:
        listed = await engine.list_leased(prefix)
        labelled = [info.id for info in listed if lease_of(info.labels, prefix) == lease_id]
    removed: list[str] = []
    pending: list[str] = []
    refused: NotOurs | None = None
    first: list[str] = []
    if docker_id:
        # The id on record is data: only the container its labels say is this lease's goes.
        try:
            full = await own_container(engine, docker_id, lease_id, prefix)
        except NotOurs as exc:
            refused = exc
        else:
            if full is None:
                removed.append(docker_id)  # already gone
            else:
                first.append(full)
    ids = list(dict.fromkeys([*first, *labelled]))  # in order, once
    for cid in ids:
        (removed if await engine.remove(cid) else pending).append(cid)
    return Removal(tuple(removed), tuple(pending), refused)
