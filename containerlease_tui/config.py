"""Settings: built-in defaults < a TOML file < ``CONTAINERLEASE_*`` env vars.

The file is ``$CONTAINERLEASE_CONFIG`` if set, else ``containerlease/config.toml`` in the user's
config directory (``~/.config`` on Linux), else none. Env vars use one ``_`` between section and
key: ``CONTAINERLEASE_REDIS_URL``, ``CONTAINERLEASE_LIMITS_MAX_DURATION``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from platformdirs import user_config_dir
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from containerlease_tui.display import CostStyle, cost_style
from containerlease_tui.durations import Duration, format_duration
from containerlease_tui.models import (
    NAME_PATTERN,
    check_cmd,
    check_container_path,
    normalize_port,
    parse_memory,
)
from containerlease_tui.redact import redact_url as redact_url  # moved; old imports still work

DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the user."""


def _memory(value: object) -> int:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return parse_memory(value)
    raise ValueError("memory must be a size such as 512m or 2g")


Memory = Annotated[int, BeforeValidator(_memory)]

# Every Linux capability (capability(7), up to CAP_CHECKPOINT_RESTORE), without the CAP_ prefix.
LINUX_CAPABILITIES: Final = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    }
)

# An image reference as Docker's distribution/reference grammar has it:
# [registry[:port]/]path[/path...][:tag][@digest], with a lowercase path.
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::[0-9]{{1,5}})?"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
IMAGE_REF: Final = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    rf"(?:@{_DIGEST})?",
    re.ASCII,
)
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_OS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", re.ASCII)
REDIS_SCHEMES: Final = ("redis", "rediss", "unix")


def _capabilities(value: list[str]) -> list[str]:
    """Capability names checked against Linux's, upper case and without ``CAP_``; no ``ALL``."""
    names: list[str] = []
    for raw in value:
        name = raw.strip().upper().removeprefix("CAP_")
        if name == "ALL":
            raise ValueError("ALL is not allowed: it would undo dropping every other capability")
        if name not in LINUX_CAPABILITIES:
            raise ValueError(f"unknown Linux capability {raw[:40]!r} (see capabilities(7))")
        if name not in names:
            names.append(name)
    return names


def _check_bind(entry: str) -> str:
    """``/abs/host:/abs/container[:ro|rw]``; whether the host path is allowed is checked later."""
    form = "use /host/path:/container/path[:ro|rw]"
    if any(ord(c) < 32 or c == "," for c in entry):
        raise ValueError(f"bind mount {entry[:60]!r}: control characters and ',' are not allowed")
    parts = entry.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"bind mount {entry[:60]!r}: {form}")
    host, container = parts[0], parts[1]
    if not host.startswith("/"):
        raise ValueError(f"bind mount {entry[:60]!r}: the host path must be absolute ({form})")
    if not container.startswith("/"):
        raise ValueError(f"bind mount {entry[:60]!r}: the container path must be absolute ({form})")
    if not container.strip("/"):
        raise ValueError(f"bind mount {entry[:60]!r}: cannot mount over the container's /")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise ValueError(f"bind mount {entry[:60]!r}: the mode must be ro or rw")
    return entry


def _check_redis_url(url: str) -> str:
    """Scheme, port, database and query of a Redis URL; messages never repeat the URL."""
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
    else:
        database = unquote(parts.path).strip("/")
        if database and not (database.isascii() and database.isdigit()):
            raise ValueError("the path must be a database number, e.g. /0")
    if parts.query:
        _check_redis_query(url, parts.query)
    return url


def _check_redis_query(url: str, query: str) -> None:
    """Query parameters are handed to redis-py's connection: refuse what it would choke on."""
    import inspect

    from redis.asyncio import connection
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url

    known = set(URL_QUERY_ARGUMENT_PARSERS)
    for cls in (
        connection.AbstractConnection,
        connection.Connection,
        connection.SSLConnection,
        connection.UnixDomainSocketConnection,
    ):
        known.update(inspect.signature(cls.__init__).parameters)
    known -= {"self", "kwargs", "args"}
    for name, _value in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            raise ValueError(f"unknown query parameter {name[:40]!r} in the URL")
    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    except ValueError:
        raise ValueError("a query parameter of the URL has an invalid value") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RedisSettings(_Section):
    """Where leases live."""

    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL: ``redis://``, ``rediss://`` for TLS, ``unix://``; may carry ``user:password@``.

    Left unset (in the file and the environment), the embedded store is used instead
    (``containerlease_tui.embedded``); this default then only shows where a set-but-empty
    section would point.
    """
    key_prefix: str = Field("cl", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    """Prefix of every key, so several installations can share one Redis."""
    retention: Duration = timedelta(days=7)
    """How long a closed lease's record is kept after its deadline before Redis drops it."""
    stream_maxlen: int = Field(10_000, ge=100)
    """Approximate cap on the event stream's length."""
    socket_timeout: float = Field(5.0, gt=0)
    """Seconds before a Redis command is abandoned as unanswered."""
    tls_ca: Path | None = None
    """CA bundle used to verify a ``rediss://`` server."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_redis_url(value)

    @model_validator(mode="after")
    def _tls_ca_needs_tls(self) -> Self:
        if self.tls_ca is not None and not self.url.startswith("rediss://"):
            raise ValueError("tls_ca is only used with a rediss:// url")
        return self


class DockerSettings(_Section):
    """How to reach the Docker engine."""

    url: str = Field(default_factory=lambda: os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_SOCKET)
    """Engine URL: ``unix:///path/docker.sock`` or ``tcp://host:2376``. Default: ``DOCKER_HOST``."""
    tls_verify: bool = False
    """Use TLS client certificates for a ``tcp://`` engine."""
    cert_path: Path | None = None
    """Folder with ``ca.pem``, ``cert.pem`` and ``key.pem`` for TLS."""
    network: str = "default"
    """Network mode of leased containers: ``default``, ``bridge``, ``none`` or a network's name.

    ``host`` and ``container:<id>`` are refused: they would share a network namespace (and the
    host's loopback services, such as Redis) with leased containers.
    """
    timeout: float = Field(30.0, gt=0)
    """Seconds to wait for an answer from the engine (pulls stream for longer)."""
    publish_address: str = "127.0.0.1"
    """Host address leased containers' ports are published on, at ports the engine picks
    (default: loopback only; ``0.0.0.0`` opens them to the network, see docs/security.md)."""
    channel_root: Path | None = None
    """Host folder (made 0700) holding each channel lease's folder, bind-mounted into its
    container; on the engine's machine. Default: ``channels`` in the user's state folder
    (``~/.local/state/containerlease/channels``; the daemon's user's, in daemon mode)."""

    @field_validator("channel_root")
    @classmethod
    def _channel_root(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    def channels(self) -> Path:
        """The channel root in effect (:attr:`channel_root` or its default)."""
        if self.channel_root is not None:
            return self.channel_root
        from platformdirs import user_state_dir  # only a channel lease needs it

        return Path(user_state_dir("containerlease")) / "channels"

    def engine_is_local(self) -> bool:
        """Whether the engine is on this machine (a ``unix://`` socket): a bind mount's host
        path means this machine's folder only then."""
        return self.url.startswith("unix://")

    @field_validator("publish_address")
    @classmethod
    def _publish_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 or ::1") from None

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if value == "host":
            raise ValueError(
                "host is refused: leased containers would share the host's network namespace "
                "and reach its loopback services (such as Redis)"
            )
        if not _NETWORK.fullmatch(value):
            raise ValueError(
                "must be default, bridge, none or a network name (letters, digits, _.-; "
                "not container:<id>)"
            )
        return value


class ImageSpec(_Section):
    """One entry of the image catalog (``[images.NAME]``)."""

    ref: str = Field(min_length=1, max_length=255)
    """Image reference, e.g. ``ubuntu:24.04``."""
    hourly_rate: Decimal = Field(ge=0, max_digits=12, decimal_places=6)
    """Price per hour, as a decimal string (``"0.04"``)."""
    description: str = ""
    """A line shown in the image picker."""
    cmd: list[str] | None = None
    """Command the container runs; default: one that keeps it alive."""
    cpus: float = Field(1.0, gt=0, le=256)
    """Default CPU limit."""
    memory: Memory = 512 * 1024**2
    """Default memory limit (``512m``, ``2g``)."""
    pids: int = Field(512, ge=16, le=65536)
    """Maximum number of processes in the container."""
    cap_add: list[str] | None = None
    """Capabilities kept for this image; default: ``[security] cap_allowlist``."""
    binds: list[str] = Field(default_factory=list)
    """Host bind mounts ``/host/path:/container/path[:ro|rw]``; host paths must be allowlisted."""
    init: bool = True
    """Run an init process as PID 1 (reaps zombies, forwards signals); false for images with one."""
    no_new_privileges: bool = True
    """Set ``no-new-privileges``; false only for an image that needs setuid binaries to work."""
    ports: list[str] = Field(default_factory=list)
    """Container ports published for every lease (``["8080/tcp"]``; a bare number is TCP)."""
    workdir: str | None = None
    """Working directory of the command; default: the image's."""
    channel: bool = False
    """Give each lease a message channel: a private folder at ``/run/containerlease`` where the
    container's program listens on ``channel.sock`` (``containerlease send``; docs/channel.md)."""

    @field_validator("ports")
    @classmethod
    def _ports_field(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_port(p) for p in value))

    @field_validator("workdir")
    @classmethod
    def _workdir_field(cls, value: str | None) -> str | None:
        return None if value is None else check_container_path(value, "workdir")

    @field_validator("cmd")
    @classmethod
    def _cmd_field(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cmd(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not IMAGE_REF.fullmatch(value):
            raise ValueError(
                "not an image reference such as ubuntu:24.04 or registry.example.com/team/app:1 "
                "(lowercase repository, optional :tag and @sha256:digest)"
            )
        return value

    @field_validator("cap_add")
    @classmethod
    def _cap_add(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _capabilities(value)

    @field_validator("binds")
    @classmethod
    def _binds(cls, value: list[str]) -> list[str]:
        targets: set[str] = set()
        for entry in value:
            _check_bind(entry)
            target = "/" + entry.split(":")[1].strip("/")
            if target in targets:
                raise ValueError(f"two bind mounts at {target[:60]!r} in the container")
            targets.add(target)
        return value

    @field_validator("hourly_rate", mode="before")
    @classmethod
    def _rate_from_text(cls, value: object) -> object:
        if isinstance(value, float):
            return Decimal(str(value))
        return value


class LimitSettings(_Section):
    """Bounds on what a user may ask for."""

    min_duration: Duration = timedelta(minutes=1)
    """Shortest lease."""
    default_duration: Duration = timedelta(hours=1)
    """Lease length when none is given."""
    max_duration: Duration = timedelta(hours=8)
    """Longest lease at creation, and longest single extension."""
    max_lifetime: Duration = timedelta(hours=24)
    """Longest a lease may live in total, extensions included."""
    max_leases_per_user: int = Field(5, ge=1)
    """Concurrent active leases per user."""
    max_leases_total: int = Field(50, ge=1)
    """Concurrent active leases on the box."""
    daily_budget_hours: Decimal | None = Field(None, gt=0)
    """Lease-hours a user may book per UTC day (unset: no budget); a failed provision gives
    its hours back, an early release the hours it did not use."""
    max_cpus: float = Field(4.0, gt=0)
    """Largest CPU limit a user may ask for."""
    max_memory: Memory = 8 * 1024**3
    """Largest memory limit a user may ask for."""
    max_ports: int = Field(8, ge=0, le=64)
    """Ports a lease may publish, the image's and the request's together."""
    max_volumes_per_user: int = Field(10, ge=0, le=1000)
    """Named volumes a user may own (``provision -v NAME:/path`` makes one on first use)."""
    max_copy_bytes: Memory = 1024**3
    """Largest archive ``containerlease cp`` moves in one copy, either way."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min_duration <= self.default_duration <= self.max_duration:
            raise ValueError(
                "need min_duration <= default_duration <= max_duration "
                f"(got {format_duration(self.min_duration)}, "
                f"{format_duration(self.default_duration)}, {format_duration(self.max_duration)})"
            )
        if self.max_lifetime < self.max_duration:
            raise ValueError("max_lifetime must be at least max_duration")
        if self.min_duration <= timedelta(0):
            raise ValueError("min_duration must be positive")
        return self


class ReaperSettings(_Section):
    """The reaper that removes containers at their deadline."""

    interval: Duration = timedelta(seconds=30)
    """Longest sleep between passes (it wakes earlier for deadlines and events)."""
    retries: int = Field(5, ge=1, le=100)
    """Attempts per removal within a pass before the lease is marked failed."""
    backoff: Duration = timedelta(milliseconds=200)
    """Base delay of the exponential backoff between attempts (with jitter)."""
    grace: Duration = timedelta(minutes=5)
    """When Redis has lost a lease: its container lives until its label deadline or this long
    after the loss was noticed, whichever is later (time for its owner to extend it)."""
    sweep_interval: Duration = timedelta(minutes=1)
    """How often the reconciliation sweep compares Docker's containers with Redis."""
    lock_ttl: Duration = timedelta(seconds=2)
    """How long a claim on a due lease lasts if its reaper dies (renewed every quarter of it
    while the work lasts)."""
    concurrency: int = Field(32, ge=1, le=512)
    """Removals done in parallel."""
    warnings: list[Duration] = Field(
        default_factory=lambda: [
            timedelta(minutes=10),
            timedelta(minutes=2),
            timedelta(seconds=30),
        ]
    )
    """Points before the deadline at which an ``expiring`` event is sent; a point counts only
    in the second half of a lease (never at creation), and a lease too short for all of them
    is warned at a quarter of its length before the end."""
    guardian: bool = True
    """Start a detached guardian reaper when the app quits or the CLI makes or extends a lease
    and no reaper is alive, so no lease is left without one; it leaves once none is needed."""


class SecuritySettings(_Section):
    """Who may do what, and how leased containers are confined."""

    admins: list[str] = Field(default_factory=list)
    """Users who may act on anybody's lease."""
    admin_group: str | None = None
    """Members of this OS group are admins too."""
    cap_allowlist: list[str] = Field(
        default_factory=lambda: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL"]
    )
    """Capabilities kept (all others dropped) unless an image overrides it."""
    bind_allowlist: list[Path] = Field(default_factory=list)
    """Host folders under which bind mounts are allowed (absolute paths, not ``/``)."""
    service_user: str | None = None
    """The account a ``sudo`` rule runs ContainerLease as (unset: none).

    When the process runs as this user and ``SUDO_UID`` is set (sudo sets it itself), the acting
    user is the one who ran sudo, not the service user. See docs/security.md before setting it.
    """

    @field_validator("cap_allowlist")
    @classmethod
    def _cap_allowlist(cls, value: list[str]) -> list[str]:
        return _capabilities(value)

    @field_validator("bind_allowlist")
    @classmethod
    def _bind_allowlist(cls, value: list[Path]) -> list[Path]:
        for folder in value:
            if not folder.is_absolute():
                raise ValueError(f"{str(folder)[:60]!r} must be an absolute path")
            if not os.path.normpath(folder).strip("/"):
                raise ValueError("/ would allow every host path, the Docker socket included")
        return value

    @field_validator("service_user")
    @classmethod
    def _service_user(cls, value: str | None) -> str | None:
        if value is not None and not _OS_NAME.fullmatch(value):
            raise ValueError("must be a user name (letters, digits, _.-; at most 32)")
        return value


DEFAULT_SERVICE_SOCKET: Final = Path("/run/containerlease/api.sock")


class ServiceSettings(_Section):
    """The lease daemon (``containerlease serve``) and how clients reach it."""

    socket: Path = DEFAULT_SERVICE_SOCKET
    """The unix socket ``serve`` listens on (it creates the folder); clients try it when no
    Redis or Docker setting is given."""
    socket_group: str | None = None
    """Group given the socket (its members may use the daemon); unset: the daemon's own."""
    socket_mode: int = Field(0o660, ge=0, le=0o777)
    """Permissions of the socket (``0o660``: owner and group); never world-writable."""
    url: str | None = None
    """``unix:///path/api.sock``: always use the daemon there (clients; also
    ``CONTAINERLEASE_SERVICE_URL``)."""

    @field_validator("socket")
    @classmethod
    def _socket(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _socket_mode(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3}", value):
            return int(value.removeprefix("0o"), 8)
        return value

    @field_validator("socket_mode")
    @classmethod
    def _not_world_writable(cls, value: int) -> int:
        if value & 0o002:
            raise ValueError("a world-writable socket would let anyone act as anyone's client")
        return value

    @field_validator("socket_group")
    @classmethod
    def _socket_group(cls, value: str | None) -> str | None:
        if value is not None and not _OS_NAME.fullmatch(value):
            raise ValueError("must be a group name (letters, digits, _.-; at most 32)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith("unix:///"):
            raise ValueError("must be unix:///absolute/path/to/api.sock")
        return value

    def client_socket(self) -> Path:
        """The socket a client uses: ``url``'s path, else ``socket``."""
        return Path(self.url.removeprefix("unix://")) if self.url else self.socket


class DisplaySettings(_Section):
    """How money reads in the app, ``ls`` and ``status`` (JSON keeps plain decimal strings)."""

    currency: str = Field("$", max_length=4)
    """Put before every cost and rate: ``$0.36/h``; ``""`` for none."""
    decimals: int = Field(2, ge=0, le=4)
    """Decimals a cost shows; an amount too small to show that way keeps four."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not value.isprintable() or any(ch.isdigit() or ch.isspace() for ch in value):
            raise ValueError("must be a symbol such as $, € or EUR (no digits, spaces or controls)")
        return value

    def apply(self) -> None:
        """Make every cost this process formats read this way (called where settings load)."""
        cost_style.set(CostStyle(self.currency, self.decimals))


class Settings(BaseSettings):
    """All of ContainerLease's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="CONTAINERLEASE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        use_attribute_docstrings=True,
        case_sensitive=False,
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    """Redis connection and key layout."""
    docker: DockerSettings = Field(default_factory=DockerSettings)
    """Docker engine connection."""
    images: dict[str, ImageSpec] = Field(
        default_factory=lambda: {
            "ubuntu": ImageSpec(
                ref="ubuntu:24.04", hourly_rate=Decimal("0.04"), description="Ubuntu 24.04 LTS"
            ),
            "alpine": ImageSpec(
                ref="alpine:3.20",
                hourly_rate=Decimal("0.01"),
                description="Alpine Linux 3.20",
                memory=256 * 1024**2,
            ),
        }
    )
    """The image catalog; a file's ``[images.*]`` tables replace the built-in one."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Durations and quotas."""
    reaper: ReaperSettings = Field(default_factory=ReaperSettings)
    """Reaper timing."""
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Ownership and container hardening."""
    display: DisplaySettings = Field(default_factory=DisplaySettings)
    """How costs read."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """The app's keys by binding id (``extend = "ctrl+e"``); ``keymap.toml`` in the user's
    config folder goes over it. Bad entries are reported in the app, the rest applies."""
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    """The lease daemon."""

    @field_validator("images")
    @classmethod
    def _image_names(cls, value: dict[str, ImageSpec]) -> dict[str, ImageSpec]:
        for name in value:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"image name {name!r} must be lowercase letters, digits, _.-")
        if not value:
            raise ValueError("the image catalog is empty")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The file chosen by load_settings, handed to settings_customise_sources (a classmethod that
# pydantic-settings calls with no room for our arguments). A ContextVar, so concurrent loads in
# other threads or tasks never see each other's file.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("containerlease_config_file", default=None)


def config_path() -> Path | None:
    """The config file in force: ``$CONTAINERLEASE_CONFIG``, else the user's one if it exists."""
    explicit = os.environ.get("CONTAINERLEASE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    default = Path(user_config_dir("containerlease")) / "config.toml"
    return default if default.is_file() else None


def _describe(error: ValidationError, origin: str) -> str:
    """Every problem, on one line: ``key: problem; key: problem``."""
    problems: list[str] = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problem = "unknown key"
        else:
            problem = item["msg"].removeprefix("Value error, ")
        text = f"{key}: {problem}"
        if text not in problems:
            problems.append(text)
    return f"config error in {origin}: " + "; ".join(problems)


def load_settings(path: Path | str | None = "auto") -> Settings:
    """Load settings, raising :class:`ConfigError` with one clear line on any problem."""
    chosen = config_path() if path == "auto" else (Path(path) if path else None)
    origin = str(chosen) if chosen else "environment"
    if chosen is not None:
        if not chosen.is_file():
            raise ConfigError(f"config error in {chosen}: file not found")
        try:
            with chosen.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config error in {chosen}: invalid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config error in {chosen}: not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(f"config error in {chosen}: cannot read: {exc.strerror}") from None
        origin = f"{chosen} (or CONTAINERLEASE_* environment)"
    token = _CONFIG_FILE.set(chosen)
    try:
        settings = Settings()
        settings.display.apply()
        return settings
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config error in {origin}: {exc}") from None
    finally:
        _CONFIG_FILE.reset(token)
