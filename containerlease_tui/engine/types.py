"""What goes into the engine and what comes out of it: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

EXEC_OUTPUT_LIMIT: Final = 64 * 1024 * 1024
"""Bytes of stdout (and of stderr) :meth:`Engine.exec` keeps."""


@dataclass(frozen=True)
class PullProgress:
    """One progress message of an image pull (``layer`` is empty for whole-image messages).

    ``current`` / ``total`` are the layer's downloaded bytes and size as known so far: they
    never go back within a pull, so the newest report of a layer supersedes all before it.
    """

    layer: str
    status: str
    current: int
    total: int
    layers_done: int
    layers_total: int


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one leased container."""

    name: str
    image_ref: str
    cmd: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    cpus: float
    memory: int
    pids: int
    cap_add: list[str]
    binds: list[str]
    network: str
    init: bool = True
    """An init process as PID 1 (``HostConfig.Init``): reaps zombies, forwards signals."""
    no_new_privileges: bool = True
    """``no-new-privileges`` in ``SecurityOpt``; false leaves it to the engine's default."""
    ports: list[str] = field(default_factory=list)
    """Container ports (``8080/tcp``) to publish at ports the engine picks."""
    publish_address: str = "127.0.0.1"
    """The host address the ports are published on."""
    workdir: str | None = None
    """The command's working directory (None: the image's)."""
    volumes: dict[str, str] = field(default_factory=dict)
    """Named volumes to mount: the engine's volume name → container path."""


@dataclass(frozen=True)
class HostInfo:
    """The engine's machine: what the box has to share between leases (``NCPU``, ``MemTotal``)."""

    cpus: int
    memory: int


@dataclass(frozen=True)
class ContainerInfo:
    """What the engine says about a container. ``exit_code`` is set only once it has exited."""

    id: str
    name: str
    state: str
    running: bool
    health: str | None
    started_at: datetime | None
    created_at: datetime | None
    exit_code: int | None
    labels: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)
    """Published ports: ``8080/tcp`` → ``127.0.0.1:49153`` (inspect only; empty when stopped)."""
    oom_killed: bool = False
    """It exited because the kernel's OOM killer ended it (``State.OOMKilled``; the listing
    inspects the containers that exited with 137 to know)."""


@dataclass(frozen=True)
class ContainerStats:
    """A one-shot resource sample: CPU as ``docker stats`` shows it, memory without page cache."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int


@dataclass(frozen=True)
class ExecResult:
    """What a non-interactive command in a container did (:meth:`Engine.exec`)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    """Some output was dropped past :data:`EXEC_OUTPUT_LIMIT`."""


@dataclass(frozen=True)
class VolumeInfo:
    """A named volume as the engine reports it (``size`` None: the engine did not say)."""

    name: str
    labels: dict[str, str]
    created_at: datetime | None
    size: int | None = None
    users: tuple[str, ...] = ()
    """Ids of the containers (any state) that mount it."""
