"""The lease rules, once: what a request may ask for, what it costs, how long a lease may live,
and who may do what to a lease in which state.

:class:`LeasePolicy` knows the settings and nothing else: no store, no engine, no network. The
service enforces it; the TUI asks it before sending anything (the provision form validates live
with it, the lease keys check :meth:`LeasePolicy.allowed`), so both say the same thing in the
same words. The one thing it reads is the file system: a bind mount's host path is resolved
(symlinks and ``..``) to be checked against the allowed folders.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal, get_args

from containerlease_tui.channel import MOUNT as CHANNEL_MOUNT
from containerlease_tui.config import ImageSpec, LimitSettings, Settings
from containerlease_tui.durations import DurationError, check_range, format_duration, parse_duration
from containerlease_tui.errors import Forbidden, InvalidInput, LeaseError
from containerlease_tui.models import (
    MAX_CMD_ARG,
    MIN_MEMORY,
    Lease,
    LeaseStatus,
    Resources,
    check_cmd,
    check_container_path,
    check_volume_name,
    cost_for,
    format_memory,
    normalize_port,
    parse_memory,
    utcnow,
    validate_name,
)

__all__ = [
    "MAX_ENV_VALUE",
    "MAX_ENV_VARS",
    "MIN_CPUS",
    "Action",
    "CheckedRequest",
    "LeasePolicy",
    "ProvisionRequest",
    "bounded_duration",
    "plan_extension",
    "warning_points",
]

MIN_CPUS = 0.01
"""The smallest CPU limit a lease may ask for."""
MAX_ENV_VALUE = 4096
MAX_ENV_VARS = 64
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

Action = Literal["shell", "extend", "delete", "stop", "start", "restart", "logs"]
"""What a user does to an existing lease (the TUI's lease keys, the CLI's commands)."""
ACTIONS: tuple[Action, ...] = get_args(Action)
_VERBS: dict[Action, str] = {
    "shell": "open a shell in",
    "logs": "read the logs of",
    "extend": "extend",
    "delete": "delete",
    "stop": "stop",
    "start": "start",
    "restart": "restart",
}
"""How each action reads in "only its owner or an admin may … it"."""
_CONTAINER_OPS = (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
MAX_REPLY_WAIT = timedelta(hours=1)
"""The longest ``send`` waits for a container's reply."""


@dataclass
class ProvisionRequest:
    """What a user asks for; every field is validated by :meth:`LeasePolicy.validate`."""

    image: str
    duration: str | timedelta | None = None
    name: str | None = None
    cpus: float | str | None = None
    memory: str | int | None = None
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    """Container ports to publish besides the image's (``8080``, ``53/udp``)."""
    cmd: str | list[str] | None = None
    """The command instead of the catalog's (a string is split as a shell would)."""
    workdir: str | None = None
    """The working directory instead of the catalog's or the image's."""
    volumes: list[str] = field(default_factory=list)
    """The user's named volumes to mount, ``NAME:/container/path``."""


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check, with the image's defaults filled in."""

    image: str
    spec: ImageSpec
    duration: timedelta
    name: str | None
    """The name asked for, validated; None: the lease is named after its image and id."""
    cpus: float
    memory: int
    env: dict[str, str]
    ports: list[str] = field(default_factory=list)
    """Every port to publish, the image's first."""
    cmd: list[str] | None = None
    workdir: str | None = None
    volumes: dict[str, str] = field(default_factory=dict)

    @property
    def cost(self) -> Decimal:
        """The cost of the whole lease."""
        return cost_for(self.spec.hourly_rate, self.duration)


def bounded_duration(
    text: str | timedelta | None, limits: LimitSettings, what: str = "duration"
) -> timedelta:
    """A lease length or extension within ``[limits]`` (empty: the default duration).

    Raises :class:`InvalidInput` naming the allowed range; its field is ``what``.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return limits.default_duration
    try:
        value = parse_duration(text)
        check_range(value, limits.min_duration, limits.max_duration, what)
    except DurationError as exc:
        raise InvalidInput(str(exc), what) from None
    return value


def plan_extension(
    lease: Lease, amount: timedelta, limits: LimitSettings, now: datetime
) -> datetime:
    """The deadline after extending ``lease`` by ``amount`` at ``now``, or :class:`InvalidInput`.

    The one place the extension rules live (the service applies them, the app previews them):
    only an active lease whose deadline has not passed may be extended (once due, the reaper
    owns it), and never beyond ``max_lifetime`` in total.
    """
    if not lease.status.is_active:
        raise InvalidInput(f"lease {lease.id} is {lease.status.value}: cannot extend", "lease")
    if lease.expires_at <= now:
        raise InvalidInput(
            f"lease {lease.id} expired at {lease.expires_at:%H:%M:%S} UTC and is being removed:"
            " too late to extend",
            "lease",
        )
    new_expiry = lease.expires_at + amount
    if new_expiry - lease.created_at > limits.max_lifetime:
        room = limits.max_lifetime - lease.lifetime
        raise InvalidInput(
            f"extension refused: a lease may live at most "
            f"{format_duration(limits.max_lifetime)} in total "
            f"({format_duration(max(room, timedelta(0)))} left to add)",
            "extension",
        )
    return new_expiry


SHORT_LEASE_WARNING = 4
"""A lease too short for any configured warning point is warned once, at this fraction
(1/4) of its length before the deadline."""
MIN_WARNING = timedelta(seconds=5)
"""No warning point closer to the deadline than this (nobody could react to it)."""


def warning_points(lifetime: timedelta, configured: Iterable[timedelta]) -> list[timedelta]:
    """The points before the deadline at which a lease of ``lifetime`` is warned, widest first.

    Relative to the lease's length, so a warning never comes at creation: a configured point
    counts only if it falls in the second half of the lease (a 10 min lease is not warned
    "expires in 10 min" the moment it is made, but at 2 min and 30 s). A lease too short for
    every configured point still gets one warning, at a quarter of its length before the end
    (a 1 min lease: at 15 s). The reaper sends these, the app shows them, the table colours by
    them.
    """
    wanted = [p for p in configured if p > timedelta(0)]
    if not wanted:
        return []
    half = lifetime / 2
    points = sorted({p for p in wanted if p <= half}, reverse=True)
    if not points:
        fallback = timedelta(seconds=int(lifetime.total_seconds() / SHORT_LEASE_WARNING))
        if fallback >= MIN_WARNING:
            points = [fallback]
    return points


class LeasePolicy:
    """The rules of one installation, from its settings alone.

    Validation raises :class:`InvalidInput` with the request field at fault; the action rules
    say why a user may not do something to a lease (:meth:`allowed`) or raise it (:meth:`require`).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def limits(self) -> LimitSettings:
        return self.settings.limits

    # --- bounds, for hints ------------------------------------------------------------------

    @property
    def duration_range(self) -> tuple[timedelta, timedelta]:
        """The shortest and longest lease (and extension) allowed."""
        return self.limits.min_duration, self.limits.max_duration

    @property
    def cpus_range(self) -> tuple[float, float]:
        """The smallest and largest CPU limit allowed."""
        return MIN_CPUS, self.limits.max_cpus

    @property
    def memory_range(self) -> tuple[int, int]:
        """The smallest and largest memory limit allowed, in bytes."""
        return MIN_MEMORY, self.limits.max_memory

    # --- durations and extensions -----------------------------------------------------------

    def warning_points(self, lease: Lease) -> list[timedelta]:
        """When this lease is warned before its deadline (:func:`warning_points`)."""
        return warning_points(lease.lifetime, self.settings.reaper.warnings)

    def bounded_duration(self, text: str | timedelta | None, what: str = "duration") -> timedelta:
        """A duration within ``[limits]`` (empty: the default); see :func:`bounded_duration`."""
        return bounded_duration(text, self.limits, what)

    def plan_extension(self, lease: Lease, amount: timedelta, now: datetime) -> datetime:
        """The new deadline of an extension; see :func:`plan_extension`."""
        return plan_extension(lease, amount, self.limits, now)

    # --- provision requests -----------------------------------------------------------------

    def spec(self, image: object) -> ImageSpec:
        """The catalog entry of ``image``, or :class:`InvalidInput` listing the choices."""
        spec = self.settings.images.get(image) if isinstance(image, str) else None
        if spec is None:
            choices = ", ".join(sorted(self.settings.images))
            raise InvalidInput(
                f"unknown image {str(image)[:40]!r}: choose one of {choices}", "image"
            )
        return spec

    def validate(self, req: ProvisionRequest) -> CheckedRequest:
        """Check every field of a request, in form order; the first problem is raised."""
        spec = self.spec(req.image)
        duration = self.bounded_duration(req.duration)
        cpus = self.check_cpus(req.cpus, spec.cpus)
        memory = self.check_memory(req.memory, spec.memory)
        env = self.check_env(req.env)
        self.check_binds(spec)
        name = self.check_name(req.name)
        ports = self.check_ports(req.ports, spec)
        cmd = self.check_cmd(req.cmd)
        workdir = self.check_workdir(req.workdir)
        volumes = self.check_volumes(req.volumes, spec)
        self.check_channel(spec, volumes)
        return CheckedRequest(
            req.image, spec, duration, name, cpus, memory, env, ports, cmd, workdir, volumes
        )

    @staticmethod
    def check_copy_path(path: str) -> str:
        """A container path for ``cp``: absolute, no ``..``, no control characters, bounded."""
        if (
            not path.startswith("/")
            or len(path) > 4096
            or any(ord(c) < 32 or ord(c) == 127 for c in path)
            or ".." in path.split("/")
        ):
            raise InvalidInput(
                f"invalid container path {path[:60]!r}: an absolute path without '..' or "
                "control characters",
                "path",
            )
        return path

    def check_ports(self, ports: Sequence[str], spec: ImageSpec) -> list[str]:
        """The image's ports and the requested ones, normalised, within ``max_ports``."""
        wanted = list(spec.ports)
        for text in ports:
            try:
                port = normalize_port(str(text))
            except ValueError as exc:
                raise InvalidInput(str(exc), "ports") from None
            if port not in wanted:
                wanted.append(port)
        if len(wanted) > self.limits.max_ports:
            raise InvalidInput(
                f"too many ports: at most {self.limits.max_ports} per lease (the image's included)",
                "ports",
            )
        return wanted

    @staticmethod
    def check_cmd(cmd: str | Sequence[str] | None) -> list[str] | None:
        """A command (a string is split as a shell would), or None for the catalog's."""
        if cmd is None or (isinstance(cmd, str) and not cmd.strip()):
            return None
        if isinstance(cmd, str):
            if "\x00" in cmd:
                raise InvalidInput("invalid command: no NUL bytes", "cmd")
            if len(cmd) > MAX_CMD_ARG:
                raise InvalidInput(f"invalid command: at most {MAX_CMD_ARG} characters", "cmd")
            try:
                argv = shlex.split(cmd)
            except ValueError as exc:
                raise InvalidInput(f"invalid command: {exc}", "cmd") from None
        else:
            argv = [str(arg) for arg in cmd]
        try:
            return check_cmd(argv)
        except ValueError as exc:
            raise InvalidInput(str(exc), "cmd") from None

    @staticmethod
    def check_workdir(workdir: str | None) -> str | None:
        """An absolute, normalised container path, or None for the default."""
        if workdir is None or not workdir.strip():
            return None
        try:
            return check_container_path(workdir, "workdir")
        except ValueError as exc:
            raise InvalidInput(str(exc), "workdir") from None

    def check_volumes(self, volumes: Sequence[str], spec: ImageSpec) -> dict[str, str]:
        """``NAME:/path`` entries as {name: path}: valid names, distinct names and paths, none
        over a catalog bind mount, at most ``max_volumes_per_user``."""
        checked: dict[str, str] = {}
        targets = {"/" + b.split(":")[1].strip("/") for b in spec.binds}
        for entry in volumes:
            name, sep, path = str(entry).partition(":")
            if not sep:
                raise InvalidInput(
                    f"invalid volume {str(entry)[:60]!r}: use NAME:/container/path", "volumes"
                )
            try:
                check_volume_name(name)
                path = check_container_path(path, "volume path")
            except ValueError as exc:
                raise InvalidInput(str(exc), "volumes") from None
            if path == "/":
                raise InvalidInput("a volume cannot be mounted over the container's /", "volumes")
            if name in checked:
                raise InvalidInput(f"volume {name} is mounted twice", "volumes")
            if path in checked.values() or path in targets:
                raise InvalidInput(f"two mounts at {path!r} in the container", "volumes")
            checked[name] = path
        if len(checked) > self.limits.max_volumes_per_user:
            raise InvalidInput(
                f"too many volumes: at most {self.limits.max_volumes_per_user}", "volumes"
            )
        return checked

    def check_channel(self, spec: ImageSpec, volumes: dict[str, str]) -> None:
        """An image with a message channel needs the engine on this machine (the channel's
        folder is a host path), and nothing else mounted at or over the channel's place."""
        if not spec.channel:
            return
        if not self.settings.docker.engine_is_local():
            raise InvalidInput(
                "this image has a message channel, which needs the Docker engine on this "
                "machine (a unix:// socket)",
                "image",
            )
        targets = [*volumes.values(), *("/" + b.split(":")[1].strip("/") for b in spec.binds)]
        for path in targets:
            if path == CHANNEL_MOUNT or path.startswith(CHANNEL_MOUNT + "/"):
                raise InvalidInput(
                    f"{path!r} is the message channel's place in the container", "volumes"
                )

    @staticmethod
    def check_reply_wait(seconds: float) -> float:
        """How long ``send`` waits for a reply: more than 0 s, at most :data:`MAX_REPLY_WAIT`."""
        if not 0 < seconds <= MAX_REPLY_WAIT.total_seconds():
            raise InvalidInput("timeout must be more than 0s and at most 1h", "timeout")
        return seconds

    def check_cpus(self, value: float | str | None, default: float) -> float:
        """A CPU limit within the allowed range (empty: ``default``)."""
        if value is None or value == "":
            return default
        try:
            cpus = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"invalid cpus {str(value)[:20]!r}: use a number", "cpus") from None
        low, high = self.cpus_range
        if not low <= cpus <= high or math.isnan(cpus):
            raise InvalidInput(f"cpus must be between {low:g} and {high:g}", "cpus")
        return cpus

    def check_memory(self, value: str | int | None, default: int) -> int:
        """A memory limit in bytes within the allowed range (empty: ``default``)."""
        if value is None or value == "":
            return default
        try:
            memory = parse_memory(value)
        except ValueError as exc:
            raise InvalidInput(str(exc), "memory") from None
        if memory > self.limits.max_memory:
            raise InvalidInput(
                f"memory must be at most {format_memory(self.limits.max_memory)}", "memory"
            )
        return memory

    @staticmethod
    def check_name(name: str | None) -> str | None:
        """A valid lease name, or None when none was asked for."""
        if not name:
            return None
        try:
            return validate_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc), "name") from None

    @staticmethod
    def check_env(env: dict[str, str]) -> dict[str, str]:
        """Environment variables Docker accepts, within the limits (a copy)."""
        if len(env) > MAX_ENV_VARS:
            raise InvalidInput(f"too many environment variables: at most {MAX_ENV_VARS}", "env")
        for key, value in env.items():
            if not _ENV_KEY.fullmatch(key):
                raise InvalidInput(
                    f"invalid environment variable name {key[:40]!r}: "
                    "use letters, digits and '_', not starting with a digit",
                    "env",
                )
            if "\x00" in value or len(value) > MAX_ENV_VALUE:
                raise InvalidInput(
                    f"invalid value for {key}: at most {MAX_ENV_VALUE} characters, no NUL bytes",
                    "env",
                )
        return dict(env)

    def check_binds(self, spec: ImageSpec) -> list[str]:
        """The image's binds with their host paths resolved, each under an allowed folder.

        Resolving follows symlinks and ``..``, so a link under an allowed folder that points
        outside it is refused. Raises :class:`InvalidInput`.
        """
        try:
            allowed = [p.resolve() for p in self.settings.security.bind_allowlist]
        except (OSError, RuntimeError):
            raise InvalidInput(
                "cannot resolve a folder of [security] bind_allowlist", "binds"
            ) from None
        checked: list[str] = []
        for bind in spec.binds:
            host_text, _, rest = bind.partition(":")
            host = Path(host_text)
            if not host.is_absolute():
                raise InvalidInput(f"bind mount {bind!r}: the host path must be absolute", "binds")
            try:
                resolved = host.resolve()
            except (OSError, RuntimeError):  # a symlink loop, for one
                raise InvalidInput(f"bind mount {bind!r}: cannot resolve {host}", "binds") from None
            if not any(resolved == a or a in resolved.parents for a in allowed):
                raise InvalidInput(
                    f"bind mount {bind!r} refused: {host} is not under an allowed folder "
                    "([security] bind_allowlist)",
                    "binds",
                )
            checked.append(f"{resolved}:{rest}")
        return checked

    def pending_lease(
        self, req: ProvisionRequest, *, owner: str, host: str, now: datetime | None = None
    ) -> Lease:
        """Validate a request and build its pending lease (not stored anywhere yet)."""
        checked = self.validate(req)
        spec = checked.spec
        now = now or utcnow()
        lease = Lease(
            name=checked.name or "pending",
            owner=owner,
            image=checked.image,
            image_ref=spec.ref,
            resources=Resources(cpus=checked.cpus, memory=checked.memory, pids=spec.pids),
            env=checked.env,
            created_at=now,
            expires_at=now + checked.duration,
            hourly_rate=spec.hourly_rate,
            host=host,
            ports=dict.fromkeys(checked.ports),
            cmd=checked.cmd,
            workdir=checked.workdir,
            volumes=checked.volumes,
            channel=spec.channel,
        )
        if checked.name is None:
            lease = lease.model_copy(update={"name": f"{checked.image}-{lease.id[:4]}"})
        return lease

    def estimate(self, req: ProvisionRequest) -> Decimal:
        """The cost of the whole lease (the request must be valid)."""
        return self.validate(req).cost

    def cost(self, image: str, duration: timedelta) -> Decimal:
        """What ``duration`` of ``image`` costs, whatever the other fields say (the form's
        live estimate, shown while, say, the memory field is still being typed)."""
        return cost_for(self.spec(image).hourly_rate, duration)

    # --- who may do what to a lease ---------------------------------------------------------

    @staticmethod
    def authorize(lease: Lease, verb: str, user: str, is_admin: bool) -> None:
        """Raise :class:`Forbidden` unless ``user`` owns the lease or is an admin.

        ``verb`` completes "only its owner or an admin may … it" (``extend``, ``read the logs
        of``).
        """
        if lease.owner != user and not is_admin:
            raise Forbidden(
                f"lease {lease.id} belongs to {lease.owner}: "
                f"only its owner or an admin may {verb} it"
            )

    def refusal(self, lease: Lease, action: Action, user: str, is_admin: bool) -> LeaseError | None:
        """Why ``user`` may not ``action`` this lease now (None: they may).

        Ownership first (:class:`Forbidden`), then the lease's state (:class:`InvalidInput`):
        the order in which the service checks them.
        """
        try:
            self.authorize(lease, _VERBS[action], user, is_admin)
        except Forbidden as exc:
            return exc
        status = lease.status.value
        problem: str | None = None
        if action == "extend":
            if not lease.status.is_active:
                problem = f"lease {lease.id} is {status}: cannot extend"
        elif action == "delete":
            if lease.status.is_terminal:
                problem = f"lease {lease.id} is already {status}"
        elif action == "shell":
            if not lease.docker_id:
                problem = f"lease {lease.id} has no container ({status})"
            elif lease.status is not LeaseStatus.RUNNING:
                problem = f"lease {lease.id} is {status}: cannot open a shell in it"
        elif action == "logs":
            if not lease.docker_id or lease.status.is_terminal:
                problem = f"lease {lease.id} has no container ({status})"
        elif lease.status not in _CONTAINER_OPS or not lease.docker_id:  # stop, start, restart
            problem = f"lease {lease.id} is {status}: cannot {action} it"
        return InvalidInput(problem, "lease") if problem else None

    def allowed(self, lease: Lease, action: Action, user: str, is_admin: bool) -> str | None:
        """None when ``user`` may ``action`` this lease now, else the one-line reason."""
        refused = self.refusal(lease, action, user, is_admin)
        return str(refused) if refused else None

    def require(self, lease: Lease, action: Action, user: str, is_admin: bool) -> None:
        """Raise the reason ``user`` may not ``action`` this lease now, if there is one."""
        refused = self.refusal(lease, action, user, is_admin)
        if refused is not None:
            raise refused
