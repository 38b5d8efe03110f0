"""Engine: the one place that talks to the Docker daemon, through aiodocker.

Every aiodocker / aiohttp failure leaves this package as an :class:`EngineError` (or a
subclass) whose message is one line a user understands, so callers never handle transport
exceptions.

Modules, by job:

* :mod:`.client` — :class:`Engine`, the Docker calls (create, start, stop, remove, inspect, …)
* :mod:`.connection` — connection setup (unix socket, tcp, TLS), timeouts, error translation
* :mod:`.parse` — Docker's JSON answers as the dataclasses of :mod:`.types`
* :mod:`.pull` — image pulls and their progress
* :mod:`.logs` — the log stream protocol (multiplexed frames, following across reconnects)
* :mod:`.execs` / :mod:`.shell` — commands in a container; the interactive shell (pty, attach)
* :mod:`.volumes` / :mod:`.archive` — named volumes; copying files in and out (``cp``)
* :mod:`.cleanup` — :func:`remove_lease_containers`, by id and by label
* :mod:`.protocol` — :class:`Runtime`, what the lease service and the reaper need of an engine
* :mod:`._compat` — the only module that touches aiodocker's private API
* :mod:`.errors`, :mod:`.types` — the typed errors and values

The label schema is :mod:`containerlease_tui.labels`; its keys are re-exported here, where they
used to live.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from containerlease_tui.engine.cleanup import Removal, remove_lease_containers
from containerlease_tui.engine.errors import EngineError, EngineUnavailable, ImageUnavailable
from containerlease_tui.engine.lazy import LazyEngine
from containerlease_tui.engine.ownership import NotOurs, own_container
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.engine.types import (
    EXEC_OUTPUT_LIMIT,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecResult,
    HostInfo,
    PullProgress,
    VolumeInfo,
)
from containerlease_tui.labels import LABEL_EXPIRES, LABEL_INSTANCE, LABEL_LEASE, LABEL_OWNER

if TYPE_CHECKING:
    from containerlease_tui.engine.client import (
        IMAGE_SEEN_TTL,
        REMOVAL_WAIT,
        STATS_EXTRA,
        STOP_GRACE,
        Engine,
    )
    from containerlease_tui.engine.logs import MAX_LINE
    from containerlease_tui.engine.pull import PULL_STALL

_LAZY = {
    "Engine": "client",
    "IMAGE_SEEN_TTL": "client",
    "REMOVAL_WAIT": "client",
    "STATS_EXTRA": "client",
    "STOP_GRACE": "client",
    "MAX_LINE": "logs",
    "PULL_STALL": "pull",
}
"""Names whose modules import aiodocker and aiohttp: loaded on first access (PEP 562), so a
command that only talks to Redis never pays for them (``engine.lazy``)."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "EXEC_OUTPUT_LIMIT",
    "IMAGE_SEEN_TTL",
    "LABEL_EXPIRES",
    "LABEL_INSTANCE",
    "LABEL_LEASE",
    "LABEL_OWNER",
    "MAX_LINE",
    "PULL_STALL",
    "REMOVAL_WAIT",
    "STATS_EXTRA",
    "STOP_GRACE",
    "ContainerInfo",
    "ContainerSpec",
    "ContainerStats",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "ExecResult",
    "HostInfo",
    "ImageUnavailable",
    "LazyEngine",
    "NotOurs",
    "PullProgress",
    "Removal",
    "Runtime",
    "VolumeInfo",
    "own_container",
    "remove_lease_containers",
]


def _engine_is_a_runtime(engine: Engine, lazy: LazyEngine) -> tuple[Runtime, Runtime]:
    """Never called: mypy proves here that :class:`Engine` and :class:`LazyEngine` satisfy
    :class:`Runtime`."""
    return engine, lazy
