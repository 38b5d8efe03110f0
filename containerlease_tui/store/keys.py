"""The key schema: every Redis key name ContainerLease uses is built here, and only here.

``docs/architecture.md`` (section *Store*) lists them with their types. Every key starts with the
configured prefix (``[redis] key_prefix``), one installation's namespace.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Keys:
    """The key schema. Every key starts with the configured prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.deadlines = f"{prefix}:deadlines"
        self.leases = f"{prefix}:leases"
        self.ids = f"{prefix}:ids"
        self.active = f"{prefix}:active"
        self.events = f"{prefix}:events"
        self.reapers = f"{prefix}:reapers"
        self.guardian = f"{prefix}:guardian"  # the one guardian reaper's lock (a token)
        # A random token written once per data set: gone means Redis lost its data.
        self.epoch = f"{prefix}:epoch"

    def reaper(self, member: str) -> str:
        return f"{self.prefix}:reaper:{member}"

    def names(self, owner: str) -> str:
        return f"{self.prefix}:names:{owner}"

    def provisioning(self, lease_id: str) -> str:
        return f"{self.prefix}:provisioning:{lease_id}"

    def lease(self, lease_id: str) -> str:
        return f"{self.prefix}:lease:{lease_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    def active_owner(self, owner: str) -> str:
        return f"{self.prefix}:active:{owner}"

    def budget(self, owner: str, day: datetime) -> str:
        return f"{self.prefix}:budget:{owner}:{day.strftime('%Y%m%d')}"

    def claim(self, lease_id: str) -> str:
        return f"{self.prefix}:claim:{lease_id}"

    def warned(self, lease_id: str, before: timedelta) -> str:
        return f"{self.prefix}:warned:{lease_id}:{int(before.total_seconds())}"
