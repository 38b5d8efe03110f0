"""The lease service: the core the CLI and the TUI are thin shells over (no UI here).

``LeaseService`` (``lease_service.py``) composes one mixin per job over ``ServiceBase``
(``base.py``: settings, policy, store, engine, lookups):

- ``provisioning.py``  ``ProvisioningOps``: submit, provision, complete (pull, create, start)
- ``lifecycle.py``     ``LifecycleOps``: extend, release, stop, start, restart
- ``containers.py``    ``ContainerOps``: container state, logs, shell, exec
- ``volumes.py``       ``VolumeOps``: named volumes, ``cp`` in and out
- ``views.py``         ``ViewOps``: list, status, events, activity, spend, capacity, health
- ``reaper_control.py`` ``ReaperControl``: reaper status and overview, guardian, in-app reaper

``reports.py`` holds the records the service returns, ``identity.py`` who is acting.
Import from here: ``from containerlease_tui.service import LeaseService, ProvisionRequest``.
"""

from __future__ import annotations

from containerlease_tui.engine import ExecResult, PullProgress
from containerlease_tui.errors import (
    Forbidden,
    InvalidInput,
    LeaseError,
    NotFound,
    ProvisionFailed,
    QuotaError,
    ServiceUnavailable,
)
from containerlease_tui.policy import (
    MAX_ENV_VALUE,
    MAX_ENV_VARS,
    LeasePolicy,
    ProvisionRequest,
    bounded_duration,
    plan_extension,
)
from containerlease_tui.reaper import ReaperStatus
from containerlease_tui.service.identity import current_user, is_admin
from containerlease_tui.service.lease_service import LeaseService
from containerlease_tui.service.provisioning import (
    KEEPALIVE_CMD,
    PROVISION_BEAT,
    PROVISION_BEAT_TTL,
)
from containerlease_tui.service.reports import (
    ContainerState,
    CopyReport,
    HealthReport,
    ImageRow,
    LeaseStatusReport,
    ReaperOverview,
    VolumeRow,
)
from containerlease_tui.store import EventBatch, LeaseList

__all__ = [
    "KEEPALIVE_CMD",
    "MAX_ENV_VALUE",
    "MAX_ENV_VARS",
    "PROVISION_BEAT",
    "PROVISION_BEAT_TTL",
    "ContainerState",
    "CopyReport",
    "EventBatch",
    "ExecResult",
    "Forbidden",
    "HealthReport",
    "ImageRow",
    "InvalidInput",
    "LeaseError",
    "LeaseList",
    "LeasePolicy",
    "LeaseService",
    "LeaseStatusReport",
    "NotFound",
    "ProvisionFailed",
    "ProvisionRequest",
    "PullProgress",
    "QuotaError",
    "ReaperOverview",
    "ReaperStatus",
    "ServiceUnavailable",
    "VolumeRow",
    "bounded_duration",
    "current_user",
    "is_admin",
    "plan_extension",
]
