"""The lease's container: its real state, output, shell and commands."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from containerlease_tui import channel
from containerlease_tui.channel import ChannelError, ChannelReply
from containerlease_tui.engine import (
    ExecResult as ExecResult,  # re-exported: the shells' type for LeaseService.exec
)
from containerlease_tui.engine import (
    PullProgress as PullProgress,  # the shells see it through the service
)
from containerlease_tui.errors import (
    InvalidInput,
    LeaseError,
)
from containerlease_tui.models import (
    EventType,
    Lease,
    LeaseStatus,
    utcnow,
)
from containerlease_tui.reaper import ReaperStatus as ReaperStatus
from containerlease_tui.store.events import acting_as

if TYPE_CHECKING:
    pass

from containerlease_tui.service.base import ServiceBase, translated
from containerlease_tui.service.reports import ContainerState, container_state_of


class ContainerOps(ServiceBase):
    """What the container is doing, its logs, a shell in it, ``exec``."""

    async def container_state(self, lease: Lease) -> ContainerState | None:
        """The real state of the lease's container right now (None: it has none yet)."""
        if not lease.docker_id:
            return None
        with translated():
            return container_state_of(await self.engine.inspect(lease.docker_id))

    async def container_states(self, leases: Sequence[Lease]) -> dict[str, ContainerState]:
        """The real state of each lease's container that the record says exists (running or
        stopped), by lease id, from one listing of the installation's containers: what the
        app's table and ``ls`` show beside the lease's own status."""
        wanted = [
            x
            for x in leases
            if x.docker_id and x.status in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
        ]
        if not wanted:
            return {}
        with translated():
            found = await self.engine.list_leased(self.settings.redis.key_prefix)
        by_id = {info.id: info for info in found}
        out: dict[str, ContainerState] = {}
        for lease in wanted:
            assert lease.docker_id is not None
            info = by_id.get(lease.docker_id)
            if info is None:
                info = next((i for i in found if i.id.startswith(lease.docker_id)), None)
            out[lease.id] = container_state_of(info)
        return out

    async def settled(
        self, lease: Lease, within: timedelta = timedelta(seconds=2)
    ) -> ContainerState | None:
        """Watch a just-started container for ``within``: the state it died in if it did
        (a command that fails at once, an OOM kill), else None. ``provision --wait`` fails
        with it instead of reporting ``running`` for a container that is already gone."""
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        while True:
            state = await self.container_state(lease)
            if state is not None and state.trouble_for(lease):
                return state
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.25)

    async def last_lines(self, lease: Lease, count: int = 10) -> builtins.list[str]:
        """The last ``count`` lines of the container's output (empty when it has none)."""
        lines: builtins.list[str] = []
        with contextlib.suppress(LeaseError):
            async for line in self.logs(lease, follow=False, tail=count):
                lines.append(line)
        return lines[-count:]

    async def logs(
        self, lease: Lease, *, follow: bool, tail: int | str = "all"
    ) -> AsyncIterator[str]:
        """The container's output as lines; the owner (or an admin) only."""
        self._authorize(lease, "read the logs of")
        if not lease.docker_id:
            return
        with translated():
            cid = await self._own(lease)
            async for line in self.engine.logs(cid, follow=follow, tail=tail):
                yield line

    async def shell(self, lease: Lease, cmd: builtins.list[str] | None = None) -> int:
        self._require(lease, "shell")
        await self.check_shell(lease)
        assert lease.docker_id is not None  # the policy refuses a lease without a container
        with translated():
            return await self.engine.shell(await self._own(lease), cmd or ["/bin/sh"])

    async def check_shell(self, lease: Lease) -> None:
        """Refuse, before anything touches the terminal, a shell in a container that is not
        running (stopped from outside, exited, removed): :class:`InvalidInput` in the CLI's
        words, ``container … is not running``."""
        self._require(lease, "shell")
        state = await self.container_state(lease)
        if state is not None and not state.running:
            short = (lease.docker_id or "")[:12]
            raise InvalidInput(f"container {short} is not running ({state.describe()})", "lease")

    async def exec(self, lease: Lease, cmd: Sequence[str]) -> ExecResult:
        """Run ``cmd`` in the lease's container, no terminal (``containerlease exec``)."""
        self._authorize(lease, "run a command in")
        if not lease.docker_id:
            raise InvalidInput(f"lease {lease.id} has no container")
        if not cmd:
            raise InvalidInput("exec needs a command to run")
        with translated():
            return await self.engine.exec(await self._own(lease), cmd)

    # --- the message channel (see containerlease_tui/channel.py) ---------------------

    async def send(self, ref: str, message: object, within: float = 30.0) -> ChannelReply:
        """Send one JSON message to the program in the lease's container and return its JSON
        reply (``containerlease send``); the owner (or an admin) only, recorded as an event."""
        lease = await self.resolve(ref)
        self._authorize(lease, "send a message to")
        if not lease.channel:
            raise InvalidInput(
                f"lease {lease.id} has no message channel (its image has no channel = true)",
                "lease",
            )
        if lease.status is not LeaseStatus.RUNNING or not lease.docker_id:
            raise InvalidInput(f"lease {lease.id} is {lease.status.value}: not running", "lease")
        self.policy.check_reply_wait(within)
        try:
            channel.encode(message)  # refused before anything connects
        except ChannelError as exc:
            raise InvalidInput(str(exc), "message") from None
        with translated():
            cid = await self._own(lease)
        folder = self._channel_folder(lease.id)
        outcome = "replied"
        try:
            return await channel.exchange(folder, cid, message, within)
        except ChannelError as exc:
            outcome = str(exc)
            raise
        finally:
            with contextlib.suppress(LeaseError), translated(), acting_as(self.user):
                await self.store.update(
                    lease.id,
                    lambda x: x.model_copy(update={"channel_at": utcnow()}),
                    event=EventType.MESSAGE,
                    detail=outcome[:200],
                )
