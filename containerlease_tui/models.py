"""The lease model and its one state machine.

Status flow::

    pending ─► pulling ─► creating ─► running ◄─► stopped
       │          │           │          │           │
       └──────────┴───────────┴──────────┴───────────┴─► released | expired | failed
                                                                         │
    failed ─► released | expired   (its leftovers were cleaned up) ◄─────┘
    pending ─► creating            (the image is already present: no pull)

* ``pending``  — the record is written and counted against quotas; nothing exists in Docker yet.
* ``pulling``  — the image is being pulled.
* ``creating`` — the container is being created and started.
* ``running`` / ``stopped`` — the container exists; the user may stop and start it.
* ``released`` — the user deleted the lease and its container is gone (terminal).
* ``expired``  — the reaper removed the container at the deadline (terminal).
* ``failed``   — provisioning or reaping failed; ``error`` says why. A failed lease may still
  own a container, so the reaper retries it at its deadline and closes it as ``expired``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEASE_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
LEASE_ID_LENGTH = 8
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}", re.ASCII)
# What a stored record may hold, checked whenever one is read as well as when it is made:
# anyone who can write Redis can write a record, and its fields end up on terminals. All ASCII,
# no controls, no spaces, no markup brackets (but for an IPv6 registry in an image reference).
# Names: what ``validate_name`` accepts, plus the default ``IMAGE-xxxx`` of a 40-character
# catalog name; owners: OS account names (``uid<N>`` too), with the ``.``, ``@``, ``$`` and
# backslash some directories use.
RECORD_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
RECORD_OWNER = r"^[A-Za-z0-9_][A-Za-z0-9_.@$\\-]{0,63}$"
OWNER_PATTERN = re.compile(RECORD_OWNER, re.ASCII)
RECORD_IMAGE = r"^[a-z0-9][a-z0-9_.-]{0,39}$"
RECORD_IMAGE_REF = r"^[A-Za-z0-9\[][A-Za-z0-9_.:/@+\[\]-]{0,511}$"
RECORD_DOCKER_ID = r"^[A-Za-z0-9_.-]{1,128}$"
# A container port (``8080/tcp``), where it is published (``127.0.0.1:49153``, ``[::1]:49153``),
# a user's volume name, and an absolute container path without controls, ``:`` or ``,``.
PORT_PATTERN = re.compile(r"([1-9][0-9]{0,4})/(tcp|udp|sctp)", re.ASCII)
RECORD_HOST_PORT = re.compile(r"(?:[0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}", re.ASCII)
VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)
CONTAINER_PATH = re.compile(r"/[A-Za-z0-9_./@+=~-]{0,254}", re.ASCII)
MAX_CMD_ARGS = 64
MAX_CMD_ARG = 4096
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?", re.ASCII)
_MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MIN_MEMORY = 6 * 1024**2  # Docker refuses less than 6 MiB.
CENT = Decimal("0.0001")


class LeaseStatus(StrEnum):
    """Where a lease is in its life; see the module docstring for the graph."""

    PENDING = "pending"
    PULLING = "pulling"
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    RELEASED = "released"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (LeaseStatus.RELEASED, LeaseStatus.EXPIRED)

    @property
    def is_active(self) -> bool:
        """Counts against quotas: the lease holds, or is about to hold, a container."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset(
    {
        LeaseStatus.PENDING,
        LeaseStatus.PULLING,
        LeaseStatus.CREATING,
        LeaseStatus.RUNNING,
        LeaseStatus.STOPPED,
    }
)
_CLOSE = {LeaseStatus.RELEASED, LeaseStatus.EXPIRED, LeaseStatus.FAILED}
TRANSITIONS: dict[LeaseStatus, frozenset[LeaseStatus]] = {
    LeaseStatus.PENDING: frozenset({LeaseStatus.PULLING, LeaseStatus.CREATING, *_CLOSE}),
    LeaseStatus.PULLING: frozenset({LeaseStatus.CREATING, *_CLOSE}),
    LeaseStatus.CREATING: frozenset({LeaseStatus.RUNNING, *_CLOSE}),
    LeaseStatus.RUNNING: frozenset({LeaseStatus.STOPPED, *_CLOSE}),
    LeaseStatus.STOPPED: frozenset({LeaseStatus.RUNNING, *_CLOSE}),
    LeaseStatus.FAILED: frozenset({LeaseStatus.RELEASED, LeaseStatus.EXPIRED}),
    LeaseStatus.RELEASED: frozenset(),
    LeaseStatus.EXPIRED: frozenset(),
}


class FailureKind(StrEnum):
    """What failed, for a ``failed`` lease (``error`` says why in words)."""

    PROVISION = "provision"
    """Provisioning did not reach ``running``; anything half-made was removed."""
    REAP = "reap"
    """The reaper could not remove the container at the deadline; it keeps retrying."""
    VANISHED = "vanished"
    """The container disappeared before the deadline."""


class IllegalTransition(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, current: LeaseStatus, target: LeaseStatus) -> None:
        super().__init__(f"lease cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def check_transition(current: LeaseStatus, target: LeaseStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → target`` is an edge of the graph."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


class EventType(StrEnum):
    """Entries of the lease event stream."""

    CREATED = "created"
    PULLING = "pulling"
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    STARTED = "started"
    RESTARTED = "restarted"
    EXTENDED = "extended"
    RELEASED = "released"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REAPED = "reaped"
    FAILED = "failed"
    MESSAGE = "message"
    """One exchange through the lease's message channel (``containerlease send``)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_lease_id() -> str:
    """Eight characters from an unambiguous lowercase alphabet: URL- and container-name-safe."""
    return "".join(secrets.choice(LEASE_ID_ALPHABET) for _ in range(LEASE_ID_LENGTH))


def validate_name(name: str) -> str:
    """Lease names: lowercase letters, digits, ``_.-``, up to 40 characters."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid name {name[:45]!r}: use 1-40 lowercase letters, digits, '_', '.' or '-',"
            " starting with a letter or digit"
        )
    return name


def check_cmd(cmd: list[str]) -> list[str]:
    """A container command: 1 to :data:`MAX_CMD_ARGS` arguments, each at most
    :data:`MAX_CMD_ARG` characters, no NUL bytes; raises ValueError."""
    if not cmd or len(cmd) > MAX_CMD_ARGS:
        raise ValueError(f"a command needs 1 to {MAX_CMD_ARGS} arguments")
    for arg in cmd:
        if "\x00" in arg or len(arg) > MAX_CMD_ARG:
            raise ValueError(
                f"invalid command argument: at most {MAX_CMD_ARG} characters, no NUL bytes"
            )
    if not cmd[0]:
        raise ValueError("the command's program is empty")
    return cmd


def normalize_port(text: str) -> str:
    """``8080`` or ``8080/tcp`` (``udp``, ``sctp``) → ``8080/tcp``; ports 1-65535; ValueError."""
    value = text.strip().lower()
    if value.isdigit():
        value += "/tcp"
    match = PORT_PATTERN.fullmatch(value)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise ValueError(
            f"invalid port {text[:20]!r}: use a number 1-65535, optionally /tcp or /udp"
        )
    return value


def check_container_path(path: str, what: str = "path") -> str:
    """An absolute, normalised container path (no ``..``, controls, ``:`` or ``,``); ValueError."""
    if not CONTAINER_PATH.fullmatch(path):
        raise ValueError(
            f"invalid {what} {path[:60]!r}: an absolute path of letters, digits and _./@+=~-, "
            "at most 255 characters"
        )
    parts = path.split("/")
    if any(part in ("..", ".") for part in parts) or "//" in path:
        raise ValueError(f"invalid {what} {path[:60]!r}: no '.', '..' or '//' components")
    return path.rstrip("/") or "/"


def check_volume_name(name: str) -> str:
    """A user's volume name: 1-32 lowercase letters, digits, '_' or '-'; ValueError."""
    if not VOLUME_NAME.fullmatch(name):
        raise ValueError(
            f"invalid volume name {name[:40]!r}: use 1-32 lowercase letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def parse_memory(text: str | int) -> int:
    """``512m``, ``1g``, ``1.5GiB`` or bytes → bytes (binary units, as Docker uses)."""
    if isinstance(text, bool):
        raise ValueError(f"invalid memory size {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _MEMORY.fullmatch(text.strip().lower())
        if not match:
            raise ValueError(f"invalid memory size {text[:40]!r}: use e.g. 256m, 1g or 1.5g")
        value = int(Decimal(match.group(1)) * _MEMORY_UNITS[match.group(2)])
    if value < MIN_MEMORY:
        raise ValueError("memory must be at least 6m (Docker's minimum)")
    return value


def format_memory(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size / 1024**2:.1f}m" if size >= 1024**2 else str(size)


def lease_hours(span: timedelta) -> Decimal:
    """A span as exact lease-hours (what the daily budget counts); never negative."""
    return Decimal(str(max(span.total_seconds(), 0.0))) / Decimal(3600)


def cost_for(rate: Decimal, span: timedelta) -> Decimal:
    """Cost of ``span`` at ``rate`` per hour, rounded to 1/100 of a cent."""
    seconds = max(Decimal(0), Decimal(str(span.total_seconds())))
    return (rate * seconds / Decimal(3600)).quantize(CENT, rounding=ROUND_HALF_UP)


class Resources(BaseModel):
    """Limits the container runs with."""

    model_config = ConfigDict(frozen=True)

    cpus: float = Field(1.0, gt=0, le=256)
    memory: int = Field(512 * 1024**2, ge=MIN_MEMORY)
    pids: int = Field(512, ge=16, le=65536)


class Extension(BaseModel):
    """One extension of a lease: who moved the deadline, when, by how much."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    by: timedelta
    by_user: str = Field(pattern=RECORD_OWNER)
    new_expires_at: datetime


class Lease(BaseModel):
    """A container leased to one user until ``expires_at``."""

    id: str = Field(default_factory=new_lease_id, pattern=r"^[a-z0-9]{4,32}$")
    name: str = Field(pattern=RECORD_NAME)
    owner: str = Field(pattern=RECORD_OWNER)
    image: str = Field(pattern=RECORD_IMAGE)
    image_ref: str = Field(pattern=RECORD_IMAGE_REF)
    resources: Resources = Field(default_factory=Resources)
    env: dict[str, str] = Field(default_factory=dict)
    status: LeaseStatus = LeaseStatus.PENDING
    docker_id: str | None = Field(None, pattern=RECORD_DOCKER_ID)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ended_at: datetime | None = None
    extensions: list[Extension] = Field(default_factory=list)
    hourly_rate: Decimal = Field(ge=0)
    error: str | None = None
    failure: FailureKind | None = None
    """Set with ``error`` when the lease went ``failed``."""
    host: str | None = None
    ports: dict[str, str | None] = Field(default_factory=dict)
    """Container ports (``8080/tcp``) and where each is published (None: not yet)."""
    cmd: list[str] | None = None
    """The command asked for (None: the catalog's)."""
    workdir: str | None = None
    """The working directory asked for (None: the catalog's, else the image's)."""
    volumes: dict[str, str] = Field(default_factory=dict)
    """The owner's named volumes it mounts: volume name → container path."""
    channel: bool = False
    """Whether it has a message channel (its image's ``channel = true``)."""
    channel_at: datetime | None = None
    """When the last message went through its channel."""

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        if len(value) > 64:
            raise ValueError("too many ports")
        for port, where in value.items():
            if not PORT_PATTERN.fullmatch(port):
                raise ValueError(f"invalid port {port[:20]!r}")
            if where is not None and not RECORD_HOST_PORT.fullmatch(where):
                raise ValueError(f"invalid published address {where[:60]!r}")
        return value

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_cmd(value)
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value is not None:
            check_container_path(value, "workdir")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 64:
            raise ValueError("too many volumes")
        for name, path in value.items():
            check_volume_name(name)
            check_container_path(path, "volume")
        return value

    @field_validator("created_at", "expires_at", "ended_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    @property
    def container_name(self) -> str:
        return f"containerlease-{self.id}"

    @property
    def short_docker_id(self) -> str:
        return (self.docker_id or "")[:12]

    def transition(
        self,
        target: LeaseStatus,
        *,
        error: str | None = None,
        failure: FailureKind | None = None,
    ) -> Lease:
        """A copy in ``target`` status; raises :class:`IllegalTransition` for a forbidden edge."""
        check_transition(self.status, target)
        update: dict[str, object] = {"status": target}
        if error is not None:
            update["error"] = error
        if failure is not None:
            update["failure"] = failure
        if target.is_terminal or target is LeaseStatus.FAILED:
            update["ended_at"] = self.ended_at or utcnow()
        return self.model_copy(update=update)

    def seconds_left(self, now: datetime | None = None) -> float:
        return max(0.0, (self.expires_at - (now or utcnow())).total_seconds())

    @property
    def lifetime(self) -> timedelta:
        return self.expires_at - self.created_at

    @property
    def estimated_cost(self) -> Decimal:
        """What the whole lease costs if it runs to its deadline."""
        return cost_for(self.hourly_rate, self.lifetime)

    def accrued_cost(self, now: datetime | None = None) -> Decimal:
        """What the lease has cost so far: from creation to now, its end or its deadline."""
        end = min(now or utcnow(), self.expires_at)
        if self.ended_at is not None:
            end = min(end, self.ended_at)
        return cost_for(self.hourly_rate, end - self.created_at)

    def to_public(self, now: datetime | None = None) -> dict[str, object]:
        """The JSON shape scripts see (``containerlease ls --json``)."""
        now = now or utcnow()
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "image": self.image,
            "image_ref": self.image_ref,
            "status": self.status.value,
            "docker_id": self.docker_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            # A closed lease has no time left, whatever its deadline says.
            "seconds_left": round(self.seconds_left(now), 3) if self.status.is_active else 0,
            "hourly_rate": str(self.hourly_rate),
            "estimated_cost": str(self.estimated_cost),
            "accrued_cost": str(self.accrued_cost(now)),
            "cpus": self.resources.cpus,
            "memory": self.resources.memory,
            "extensions": len(self.extensions),
            "error": self.error,
            "failure": self.failure.value if self.failure else None,
            "ports": dict(self.ports),
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "workdir": self.workdir,
            "volumes": dict(self.volumes),
            "channel": self.channel,
            "channel_at": self.channel_at.isoformat() if self.channel_at else None,
        }


class LeaseEvent(BaseModel):
    """One entry of the event stream."""

    model_config = ConfigDict(frozen=True)

    id: str = ""  # the stream entry id, set when read back
    type: EventType
    lease: str
    owner: str
    at: datetime = Field(default_factory=utcnow)
    detail: str = ""
    actor: str = ""
    """Who did it: the OS user acting, ``reaper`` for the reaper; read back as the owner for
    an entry written without one (before actors were recorded)."""

    def to_public(self) -> dict[str, object]:
        """The JSON shape scripts see (``containerlease events --json``, one per line)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "type": self.type.value,
            "lease": self.lease,
            "owner": self.owner,
            "actor": self.actor or self.owner,
            "detail": self.detail,
        }
