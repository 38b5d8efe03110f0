"""``LeaseService``: the one door the CLI and the TUI go through, composed of its jobs.

Provisioning writes the pending lease first (counted against quotas in the same atomic step),
then records each step as it happens. Whatever fails, the lease ends ``failed`` with a reason a
person understands and anything half-made is removed; a crash between two steps leaves the lease
record and/or a container carrying its labels, which is all the reaper needs.

Each job is a mixin in its own module over :class:`~containerlease_tui.service.base.ServiceBase`
(the shared state); this class only puts them together and builds the app's instance.
"""

from __future__ import annotations

from containerlease_tui.config import Settings
from containerlease_tui.engine import LazyEngine
from containerlease_tui.service.containers import ContainerOps
from containerlease_tui.service.lifecycle import LifecycleOps
from containerlease_tui.service.provisioning import ProvisioningOps
from containerlease_tui.service.reaper_control import ReaperControl
from containerlease_tui.service.views import ViewOps
from containerlease_tui.store import LeaseStore

__all__ = ["LeaseService"]


class LeaseService(ProvisioningOps, LifecycleOps, ContainerOps, ViewOps, ReaperControl):
    """Provision, extend, release and operate leases for one user."""

    @classmethod
    def open(cls, settings: Settings, user: str | None = None) -> LeaseService:
        """The app factory: connections are made lazily, so this never blocks or fails."""
        return cls(
            settings, LeaseStore.from_settings(settings), LazyEngine(settings.docker), user=user
        )
