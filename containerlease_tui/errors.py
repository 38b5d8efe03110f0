"""The errors a user sees: one line each, with the exit code the CLI uses.

The service raises only these (store and engine errors are translated at its edge), the CLI
prints them, the TUI shows them; :class:`InvalidInput` names the request field it is about, so
a form can mark that input without reading the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from containerlease_tui.models import Lease

__all__ = [
    "Forbidden",
    "InvalidInput",
    "LeaseError",
    "NotFound",
    "ProvisionFailed",
    "QuotaError",
    "ServiceUnavailable",
]


class LeaseError(Exception):
    """An error for the user: one line, and the exit code the CLI should use."""

    exit_code = 1


class InvalidInput(LeaseError):
    """Bad input: nothing was changed.

    ``field`` is the request field at fault ("image", "duration", "name", "cpus", "memory",
    "env", "binds", "extension", ...), or None when the input as a whole is refused (a lease
    reference, a lease in the wrong state).
    """

    exit_code = 2

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(LeaseError):
    """No lease matches the given id, prefix or name."""

    exit_code = 2


class Forbidden(LeaseError):
    """The lease belongs to someone else and the user is not an admin."""

    exit_code = 1


class QuotaError(LeaseError):
    """A quota or budget would be exceeded: nothing was changed."""

    exit_code = 1


class ServiceUnavailable(LeaseError):
    """Redis or the Docker engine cannot be reached."""

    exit_code = 1


class ProvisionFailed(LeaseError):
    """Provisioning failed; the lease is recorded as failed and nothing is left running.

    ``reason`` is the cause alone (the message adds "provision failed: "); ``lease`` the failed
    lease as recorded, when Redis could still be written.
    """

    def __init__(self, reason: str, lease: Lease | None = None) -> None:
        super().__init__(f"provision failed: {reason}")
        self.reason = reason
        self.lease = lease
