"""Reading Docker's JSON answers: loosely typed dicts in, the engine's dataclasses out.

Pure functions: nothing here talks to the daemon. Missing or mistyped fields read as empty, never
as an exception, since what an engine sends varies with its version.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, cast

from containerlease_tui.engine.types import ContainerInfo
from containerlease_tui.labels import parse_rfc3339

Json = dict[str, object]
# Docker states in which the container's process exists (inspect's State.Running is true).
ALIVE_STATES: Final = frozenset({"running", "paused", "restarting"})
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_LIST_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_LIST_EXIT = re.compile(r"^Exited \((-?\d+)\)")
_FULL_ID = re.compile(r"[0-9a-f]{64}")


def as_dict(value: object) -> Json:
    return cast(Json, value) if isinstance(value, dict) else {}


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


def as_labels(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in as_dict(value).items()}


def docker_time(text: object) -> datetime | None:
    """Docker's RFC 3339 times (nanosecond fractions allowed); its zero time means "never"."""
    if not text or text == ZERO_TIME:
        return None
    moment = parse_rfc3339(text)
    if moment is None or moment.year <= 1:
        return None
    return moment


def one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.strip().split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def short_id(cid: str) -> str:
    """A full container id shortened as ``docker ps`` shows it; anything else as given."""
    return cid[:12] if _FULL_ID.fullmatch(cid) else cid


def info_from_inspect(data: Json) -> ContainerInfo:
    state = as_dict(data.get("State"))
    status = as_str(state.get("Status"))
    health = as_str(as_dict(state.get("Health")).get("Status")) or None
    return ContainerInfo(
        id=as_str(data.get("Id")),
        name=as_str(data.get("Name")).lstrip("/"),
        state=status,
        running=bool(state.get("Running")),
        health=health,
        started_at=docker_time(state.get("StartedAt")),
        created_at=docker_time(data.get("Created")),
        exit_code=as_int(state.get("ExitCode")) if status in ("exited", "dead") else None,
        labels=as_labels(as_dict(data.get("Config")).get("Labels")),
        ports=published_ports(as_dict(data.get("NetworkSettings")).get("Ports")),
        oom_killed=state.get("OOMKilled") is True and status in ("exited", "dead"),
    )


def published_ports(value: object) -> dict[str, str]:
    """``NetworkSettings.Ports`` as ``{"8080/tcp": "127.0.0.1:49153"}`` (the first binding;
    an IPv6 address in brackets; ports without a binding left out)."""
    found: dict[str, str] = {}
    for port, bindings in as_dict(value).items():
        if not isinstance(bindings, list) or not bindings:
            continue
        first = as_dict(bindings[0])
        host, number = as_str(first.get("HostIp")), as_str(first.get("HostPort"))
        if not number.isdigit():
            continue
        host = host or "0.0.0.0"
        found[str(port)] = f"[{host}]:{number}" if ":" in host else f"{host}:{number}"
    return found


def info_from_list(data: Json) -> ContainerInfo:
    """The list endpoint's summary: no start time, health and exit code only in ``Status``."""
    names = data.get("Names")
    name = as_str(names[0]) if isinstance(names, list) and names else ""
    state = as_str(data.get("State"))
    summary = as_str(data.get("Status"))
    health_match = _LIST_HEALTH.search(summary)
    health = None
    if health_match:
        health = health_match.group(1).removeprefix("health: ")
    exit_match = _LIST_EXIT.match(summary)
    created = as_int(data.get("Created"))
    return ContainerInfo(
        id=as_str(data.get("Id")),
        name=name.lstrip("/"),
        state=state,
        running=state in ALIVE_STATES,
        health=health,
        started_at=None,
        created_at=datetime.fromtimestamp(created, UTC) if created else None,
        exit_code=int(exit_match.group(1)) if exit_match else None,
        labels=as_labels(data.get("Labels")),
    )


def cpu_percent(sample: Json) -> float:
    """``docker stats``' formula: container CPU time over host CPU time, times online CPUs."""
    cpu = as_dict(sample.get("cpu_stats"))
    pre = as_dict(sample.get("precpu_stats"))
    usage = as_dict(cpu.get("cpu_usage"))
    total = as_int(usage.get("total_usage"))
    pre_total = as_int(as_dict(pre.get("cpu_usage")).get("total_usage"))
    system = as_int(cpu.get("system_cpu_usage"))
    pre_system = as_int(pre.get("system_cpu_usage"))
    if None in (total, pre_total, system, pre_system):
        return 0.0
    cpu_delta = cast(int, total) - cast(int, pre_total)
    system_delta = cast(int, system) - cast(int, pre_system)
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    percpu = usage.get("percpu_usage")
    online = as_int(cpu.get("online_cpus")) or (len(percpu) if isinstance(percpu, list) else 0)
    return cpu_delta / system_delta * max(online, 1) * 100.0


def memory_usage(sample: Json) -> tuple[int, int]:
    """(usage without reclaimable page cache, limit), as ``docker stats`` computes it."""
    memory = as_dict(sample.get("memory_stats"))
    usage = as_int(memory.get("usage")) or 0
    limit = as_int(memory.get("limit")) or 0
    details = as_dict(memory.get("stats"))
    # cgroup v1 reports total_inactive_file, v2 inactive_file; older engines only "cache".
    for key in ("total_inactive_file", "inactive_file", "cache"):
        cache = as_int(details.get(key))
        if cache is not None and cache < usage:
            return usage - cache, limit
    return usage, limit
