"""What goes over the daemon's socket: JSON from the service's own types, and one error shape.

Every value is (de)serialized by a pydantic adapter over the type the service returns, so the
client rebuilds exactly what :class:`~containerlease_tui.leases.LeaseService` would have
returned in direct mode. Streams are JSON lines (``application/x-ndjson``), one object each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from containerlease_tui.activity import EventFilter
from containerlease_tui.errors import (
    Forbidden,
    InvalidInput,
    LeaseError,
    NotFound,
    ProvisionFailed,
    QuotaError,
    ServiceUnavailable,
)
from containerlease_tui.leases import (
    ContainerState,
    ExecResult,
    HealthReport,
    ImageRow,
    LeaseStatusReport,
    PullProgress,
    ReaperOverview,
    ReaperStatus,
    VolumeRow,
)
from containerlease_tui.models import Lease
from containerlease_tui.spend import Capacity, Outlook, TeamSpend
from containerlease_tui.store import CorruptRecord, EventBatch, LeaseList
from containerlease_tui.store.events import EventHistory

__all__ = ["CorruptRecord", "EventBatch", "EventHistory", "LeaseList"]

API: Final = "/v1"
NDJSON: Final = "application/x-ndjson"
MAX_BODY: Final = 64 * 1024
"""Largest request body the daemon reads (a provision request is well under 1 KiB)."""

LEASE: Final = TypeAdapter(Lease)
LEASES: Final = TypeAdapter(list[Lease])
IMAGES: Final = TypeAdapter(list[ImageRow])
STATUS: Final = TypeAdapter(LeaseStatusReport)
HEALTH: Final = TypeAdapter(HealthReport)
REAPERS: Final = TypeAdapter(ReaperStatus)
EVENTS: Final = TypeAdapter(EventBatch)
PROGRESS: Final = TypeAdapter(PullProgress)
STATE: Final = TypeAdapter(ContainerState | None)
STATES: Final = TypeAdapter(dict[str, ContainerState])
LINES: Final = TypeAdapter(list[str])
FILTER: Final = TypeAdapter(EventFilter | None)
HISTORY: Final = TypeAdapter(EventHistory)
SPEND: Final = TypeAdapter(TeamSpend)
OUTLOOK: Final = TypeAdapter(Outlook)
CAPACITY: Final = TypeAdapter(Capacity)
OVERVIEW: Final = TypeAdapter(ReaperOverview)
VOLUMES: Final = TypeAdapter(list[VolumeRow])


def lease_list(data: Any) -> LeaseList:
    """``GET /v1/leases?skipped=1``: the leases and the records the daemon could not read."""
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    skipped = [
        CorruptRecord(str(bad.get("lease_id", "?")), str(bad.get("reason", "?")))
        for bad in data.get("skipped") or []
        if isinstance(bad, dict)
    ]
    return LeaseList(LEASES.validate_python(data.get("leases")), skipped)


class ExecWire(BaseModel):
    """An :class:`ExecResult` on the wire: its output is any bytes, so base64."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False

    @classmethod
    def of(cls, result: ExecResult) -> ExecWire:
        return cls(
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            truncated=result.truncated,
        )

    def result(self) -> ExecResult:
        return ExecResult(self.exit_code, self.stdout, self.stderr, self.truncated)


def dump(adapter: TypeAdapter[Any], value: object) -> Any:
    """``value`` as JSON-ready data."""
    return adapter.dump_python(value, mode="json")


class ProvisionBody(BaseModel):
    """``POST /v1/leases``: a provision request (no owner: the daemon knows who asks)."""

    model_config = ConfigDict(extra="ignore")  # a forged "owner" is dropped, never read

    image: str = Field(max_length=200)
    duration: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=200)
    cpus: float | str | None = None
    memory: str | int | None = None
    env: dict[str, str] = Field(default_factory=dict)


class IdsBody(BaseModel):
    """``POST /v1/containers/states``: the leases (by id) whose containers to look at."""

    model_config = ConfigDict(extra="ignore")
    ids: list[str] = Field(default_factory=list, max_length=1000)


class EventLogBody(BaseModel):
    """``POST /v1/events/log``: the filter (``EventFilter`` as JSON) and the limit."""

    model_config = ConfigDict(extra="ignore")
    filter: dict[str, Any] | None = None
    limit: int = Field(1000, ge=1, le=100_000)


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    by: str | None = Field(None, max_length=64)


class ContainerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: str = Field(max_length=64)


class ExecBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cmd: list[str] = Field(max_length=1024)


class SendBody(BaseModel):
    """``POST /v1/leases/{ref}/send``: one message for the lease's channel, and how long to
    wait for the reply."""

    model_config = ConfigDict(extra="ignore")
    message: JsonValue
    timeout: float = 30.0  # bounded by the service, in the same words as in direct mode


class Session(BaseModel):
    """``GET /v1/session``: whom the daemon believes the caller is, and the rules it applies
    (so the app's form checks what the daemon will)."""

    user: str
    admin: bool
    uid: int
    limits: dict[str, Any]
    images: dict[str, Any]
    display: dict[str, Any]
    version: str


# --- errors ------------------------------------------------------------------------------------

ERROR_TYPES: Final[dict[str, type[LeaseError]]] = {
    cls.__name__: cls
    for cls in (
        LeaseError,
        InvalidInput,
        NotFound,
        Forbidden,
        QuotaError,
        ServiceUnavailable,
        ProvisionFailed,
    )
}
HTTP_STATUS: Final[dict[type[LeaseError], int]] = {
    InvalidInput: 400,
    NotFound: 404,
    Forbidden: 403,
    QuotaError: 409,
    ServiceUnavailable: 503,
    ProvisionFailed: 422,
    LeaseError: 409,
}


def error_body(
    error_type: str, message: str, details: dict[str, object] | None = None
) -> dict[str, object]:
    """The one error shape every refusal has."""
    return {
        "error": True,
        "error_type": error_type,
        "message": message,
        "details": details or {},
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def lease_error_body(exc: LeaseError) -> tuple[int, dict[str, object]]:
    """A service error as (HTTP status, body)."""
    kind = type(exc)
    while kind not in HTTP_STATUS:
        kind = kind.__mro__[1]  # a subclass of a known one: answer as its parent
    details: dict[str, object] = {}
    if isinstance(exc, InvalidInput) and exc.field:
        details["field"] = exc.field
    if isinstance(exc, ProvisionFailed):
        details["reason"] = exc.reason
        details["lease"] = dump(LEASE, exc.lease) if exc.lease is not None else None
    message = exc.reason if isinstance(exc, ProvisionFailed) else str(exc)
    return HTTP_STATUS[kind], error_body(kind.__name__, message, details)


def lease_error(body: object, status: int) -> LeaseError:
    """The service error an error body stands for (what direct mode would have raised)."""
    if not isinstance(body, dict) or body.get("error") is not True:
        return LeaseError(f"the daemon answered HTTP {status} without an error body")
    kind = ERROR_TYPES.get(str(body.get("error_type")), LeaseError)
    message = " ".join(str(body.get("message", "")).split())[:500] or f"HTTP {status}"
    details = body.get("details")
    details = details if isinstance(details, dict) else {}
    if kind is InvalidInput:
        field = details.get("field")
        return InvalidInput(message, field if isinstance(field, str) else None)
    if kind is ProvisionFailed:
        raw = details.get("lease")
        lease = None
        if raw is not None:
            try:
                lease = LEASE.validate_python(raw)
            except ValueError:
                lease = None
        return ProvisionFailed(message, lease)
    if kind is LeaseError and body.get("error_type") not in ERROR_TYPES:
        return LeaseError(message)
    return kind(message)
