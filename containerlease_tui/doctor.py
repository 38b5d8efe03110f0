"""``containerlease doctor``: which store is used and whether it, the engine and a reaper answer.

Core (no click, no Textual): the CLI prints :meth:`DoctorReport.lines` or, with ``--json``,
:meth:`DoctorReport.to_public` (documented in ``docs/cli-json.md``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from containerlease_tui.config import Settings
from containerlease_tui.embedded import (
    EmbeddedStatus,
    EmbeddedStoreError,
    StoreTarget,
    resolve,
)
from containerlease_tui.redact import redact_url
from containerlease_tui.service_api import LeaseServiceAPI


@dataclass(frozen=True)
class DoctorReport:
    """What doctor found; ``ok`` when the store and the engine both answer."""

    user: str
    admin: bool
    store_kind: str
    """``configured`` (a URL in the file or environment), ``daemon`` or ``embedded``."""
    store_url: str
    """Redacted: never a password."""
    store_ok: bool
    store_detail: str
    embedded: EmbeddedStatus | None
    docker_url: str
    docker_ok: bool
    docker_detail: str
    reaper_alive: bool | None
    """None when the store could not be read."""
    reaper_detail: str
    unreadable: list[str] | None = None
    """Ids of lease records this version cannot read (None: the store could not be read)."""
    via: Path | None = None
    """Client mode: the daemon's socket (the store and engine lines are what it sees)."""

    @property
    def ok(self) -> bool:
        return self.store_ok and self.docker_ok

    def _store_where(self) -> str:
        if self.store_kind == "embedded":
            where = (
                self.embedded.describe()
                if self.embedded is not None
                else "embedded store (not started)"
            )
            return where.replace(": not running", "")
        return self.store_url

    def lines(self) -> list[str]:
        """The human report, one line per check."""
        mode = (
            f"mode:   client of the daemon at unix://{self.via} (it knows you as {self.user})"
            if self.via
            else "mode:   direct (this process talks to Redis and Docker)"
        )
        return [
            mode,
            f"user:   {self.user}" + (" (admin)" if self.admin else ""),
            f"redis:  {self._store_where()}: {self.store_detail}",
            f"docker: {self.docker_url}: {self.docker_detail}",
            f"reaper: {self.reaper_detail}",
            f"leases: {self._records_line()}",
        ]

    def _records_line(self) -> str:
        if self.unreadable is None:
            return "unknown (the store is unreachable)"
        if not self.unreadable:
            return "every record readable"
        count = len(self.unreadable)
        return (
            f"{count} unreadable record{'s' if count != 1 else ''} skipped "
            f"(written by a newer version, or damaged): {', '.join(self.unreadable)}"
        )

    def to_public(self) -> dict[str, object]:
        """The JSON shape of ``doctor --json``."""
        embedded = self.embedded
        return {
            "ok": self.ok,
            "mode": "client" if self.via else "direct",
            "daemon": f"unix://{self.via}" if self.via else None,
            "user": self.user,
            "admin": self.admin,
            "store": {
                "kind": self.store_kind,
                "url": self.store_url,
                "ok": self.store_ok,
                "detail": self.store_detail,
                "path": str(embedded.paths.root) if embedded else None,
                "server": embedded.server if embedded else None,
                "pid": embedded.pid if embedded else None,
            },
            "docker": {"url": self.docker_url, "ok": self.docker_ok, "detail": self.docker_detail},
            "reaper": {"alive": self.reaper_alive, "detail": self.reaper_detail},
            "leases": {"unreadable": self.unreadable},
        }


def store_target(settings: Settings) -> tuple[StoreTarget | None, str | None]:
    """The store doctor checks: resolved (the embedded store started if that is the one),
    or None and why it could not be."""
    try:
        return resolve(settings), None
    except EmbeddedStoreError as exc:
        return None, str(exc)


async def check(
    service: LeaseServiceAPI, target: StoreTarget | None, problem: str | None
) -> DoctorReport:
    """Ping the store and the engine, and read the reapers' heartbeats."""
    from containerlease_tui.errors import LeaseError

    health = await service.health()
    store_ok, store_detail = health.redis_ok, health.redis_detail
    if target is None:  # the embedded store could not start: nothing to ping
        store_ok, store_detail = False, problem or "unavailable"
    reaper_alive: bool | None = None
    reaper_detail = "unknown (the store is unreachable)"
    if store_ok:
        try:
            reapers = await service.reaper_status()
            reaper_detail, reaper_alive = reapers.describe(), reapers.alive
        except LeaseError as exc:
            reaper_detail = f"unknown ({exc})"
    unreadable: list[str] | None = None
    if store_ok:
        with contextlib.suppress(LeaseError):
            listed = await service.list(all_users=True)
            unreadable = sorted(bad.lease_id for bad in listed.skipped)
    settings = service.settings
    return DoctorReport(
        user=service.user,
        admin=service.is_admin,
        store_kind=target.kind if target else "embedded",
        store_url=redact_url(settings.redis.url) if target else "",
        store_ok=store_ok,
        store_detail=store_detail,
        embedded=target.embedded if target else None,
        docker_url=redact_url(settings.docker.url),
        docker_ok=health.docker_ok,
        docker_detail=health.docker_detail,
        reaper_alive=reaper_alive,
        reaper_detail=reaper_detail,
        unreadable=unreadable,
    )


async def check_via_daemon(service: LeaseServiceAPI, via: Path) -> DoctorReport:
    """Client mode: who the daemon says we are, and what it sees of the store, the engine and
    its reaper."""
    from containerlease_tui.errors import LeaseError

    health = await service.health()
    reaper_alive: bool | None = None
    reaper_detail = "unknown (the daemon is unreachable)"
    if health.redis_ok:
        try:
            reapers = await service.reaper_status()
            reaper_detail, reaper_alive = reapers.describe(), reapers.alive
        except LeaseError as exc:
            reaper_detail = f"unknown ({exc})"
    return DoctorReport(
        user=service.user or "unknown (the daemon is unreachable)",
        admin=service.is_admin,
        store_kind="service",
        store_url="via the daemon",
        store_ok=health.redis_ok,
        store_detail=health.redis_detail,
        embedded=None,
        docker_url="via the daemon",
        docker_ok=health.docker_ok,
        docker_detail=health.docker_detail,
        reaper_alive=reaper_alive,
        reaper_detail=reaper_detail,
        via=via,
    )
