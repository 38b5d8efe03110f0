"""Acting only on our own containers: before any action by a record's ``docker_id``, the
container's labels must name that lease and this installation (``labels.lease_of``).

A lease record is data anyone with Redis access can write: a ``docker_id`` naming some other
container (unlabelled, another lease's, another installation's) must never get that container
removed, stopped, exec'd into or read. :func:`own_container` checks, and answers with the full
id Docker resolved, so the action that follows names exactly the container that was checked.
"""

from __future__ import annotations

from containerlease_tui.engine.errors import EngineError
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.labels import LABEL_INSTANCE, LABEL_LEASE, lease_of
from containerlease_tui.sanitize import one_line


class NotOurs(EngineError):
    """The container a record names is not that lease's (by its labels): nothing was done."""

    def __init__(self, cid: str, lease_id: str, labels: dict[str, str]) -> None:
        named, instance = labels.get(LABEL_LEASE), labels.get(LABEL_INSTANCE)
        if not named:
            what = "it carries no lease label"
        elif named != lease_id:
            what = f"it is labelled for lease {named}"
        else:
            what = f"it belongs to another installation ({instance or 'none'})"
        super().__init__(
            one_line(
                f"refused: container {cid[:12]} is not the container of lease {lease_id} "
                f"({what}); it was left untouched",
                300,
            )
        )
        self.cid = cid
        self.lease_id = lease_id


async def own_container(engine: Runtime, cid: str, lease_id: str, prefix: str) -> str | None:
    """The full id of container ``cid`` if it is lease ``lease_id``'s in installation
    ``prefix``; None when no such container exists; :class:`NotOurs` when it is someone
    else's. Other failures are the engine's ``EngineError``."""
    info = await engine.inspect(cid)
    if info is None:
        return None
    if lease_of(info.labels, prefix) != lease_id:
        raise NotOurs(cid, lease_id, dict(info.labels))
    return info.id
