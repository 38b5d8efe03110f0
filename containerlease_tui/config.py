"""Settings: built-in defaults < a TOML file < ``CONTAINERLEASE_*`` env vars.

The file is ``$CONTAINERLEASE_CONFIG`` if set, else ``containerlease/config.toml`` in the user's
config directory (``~/.config`` on Linux), else none. Env vars use one ``_`` between section and
key: ``CONTAINERLEASE_REDIS_URL``, ``CONTAINERLEASE_LIMITS_MAX_DURATION``.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Self

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

from containerlease_tui.durations import Duration, format_duration
from containerlease_tui.models import parse_memory

DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the user."""


def _memory(value: object) -> int:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return parse_memory(value)
    raise ValueError("memory must be a size such as 512m or 2g")


Memory = Annotated[int, BeforeValidator(_memory)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RedisSettings(_Section):
    """Where leases live."""

    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL: ``redis://``, ``rediss://`` for TLS, ``unix://``; may carry ``user:password@``."""
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


class DockerSettings(_Section):
    """How to reach the Docker engine."""

    url: str = Field(default_factory=lambda: os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_SOCKET)
    """Engine URL: ``unix:///path/docker.sock`` or ``tcp://host:2376``. Default: ``DOCKER_HOST``."""
    tls_verify: bool = False
    """Use TLS client certificates for a ``tcp://`` engine."""
    cert_path: Path | None = None
    """Folder with ``ca.pem``, ``cert.pem`` and ``key.pem`` for TLS."""
    network: str = "default"
    """Network mode of leased containers."""
    timeout: float = Field(30.0, gt=0)
    """Seconds to wait for an answer from the engine (pulls stream for longer)."""


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
    """Host bind mounts ``/host/path:/container/path[:ro]``; host paths must be allowlisted."""

    @field_validator("hourly_rate", mode="before")
    @classmethod
    def _rate_from_text(cls, value: object) -> object:
        if isinstance(value, float):
            return Decimal(str(value))
        return value


class LimitSettings(_Section):
    """Bounds on what a user may ask for."""

    min_duration: Duration = timedelta(minutes=5)
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
    """Lease-hours a user may book per UTC day (unset: no budget)."""
    max_cpus: float = Field(4.0, gt=0)
    """Largest CPU limit a user may ask for."""
    max_memory: Memory = 8 * 1024**3
    """Largest memory limit a user may ask for."""

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
    grace: Duration = timedelta(seconds=60)
    """When Redis has lost a lease, how long past its label deadline a container may live."""
    sweep_interval: Duration = timedelta(minutes=1)
    """How often the reconciliation sweep compares Docker's containers with Redis."""
    lock_ttl: Duration = timedelta(seconds=30)
    """How long a claim on a due lease lasts if its reaper dies."""
    concurrency: int = Field(32, ge=1, le=512)
    """Removals done in parallel."""
    warnings: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=10), timedelta(minutes=2)]
    )
    """Points before the deadline at which an ``expiring`` event is sent."""


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
    """Host folders under which bind mounts are allowed."""


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

    @field_validator("images")
    @classmethod
    def _image_names(cls, value: dict[str, ImageSpec]) -> dict[str, ImageSpec]:
        import re

        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", name, re.ASCII):
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
        path = _CONFIG_PATH.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The file chosen by load_settings, handed to settings_customise_sources (a classmethod).
_CONFIG_PATH: dict[str, Path | None] = {}


def config_path() -> Path | None:
    """The config file in force: ``$CONTAINERLEASE_CONFIG``, else the user's one if it exists."""
    explicit = os.environ.get("CONTAINERLEASE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    default = Path(user_config_dir("containerlease")) / "config.toml"
    return default if default.is_file() else None


def redact_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``: secrets never reach a screen."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url if "@" not in url else "<url with credentials>"
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, hostport = authority.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url  # a user name alone is no secret
    return f"{scheme}://{user}:***@{hostport}{slash}{tail}"


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = "unknown key"
    else:
        problem = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"config error in {origin}: {key}: {problem}{suffix}"


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
    _CONFIG_PATH["path"] = chosen
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config error in {origin}: {exc}") from None
    finally:
        _CONFIG_PATH.pop("path", None)
