"""The ContainerLease terminal app: a thin shell over LeaseService and the Reaper.

Workers do the I/O (opening the service, following the event stream, health checks, the in-app
reaper, provisioning and other actions) and only post messages; the ``@on`` handlers below own
the state. Every exception a worker meets becomes a toast or the banner: the app stays up while
Redis or Docker are down and recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import signal
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec

from textual import on, work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from containerlease_tui.backoff import Backoff
from containerlease_tui.config import Settings
from containerlease_tui.leases import LeaseError, ProvisionFailed
from containerlease_tui.models import (
    Lease,
    LeaseEvent,
    LeaseStatus,
    utcnow,
)
from containerlease_tui.redact import redact_url
from containerlease_tui.sanitize import clean, one_line
from containerlease_tui.tui.formatting import lease_label
from containerlease_tui.tui.keys import (
    ACTIVITY_KEYS,
    FILTER_KEYS,
    FORM_KEYS,
    FORM_SUBMIT,
    GLOBAL_KEYS,
    LEASE_KEYS,
    LOG_KEYS,
    LOGS_ALIAS,
    TABLE_NAV,
    VIEW_BACK,
    VIEW_KEYS,
    Keymap,
    hidden,
    key_label,
    load_user_keymap,
)
from containerlease_tui.tui.messages import (
    ActionDone,
    ContainersChecked,
    HealthChanged,
    ImagesLoaded,
    LeasesLoaded,
    ProvisionFinished,
    ProvisionStatus,
    PullProgressed,
    ReaperStateChanged,
    RedisLost,
    ServiceFailed,
    ServiceReady,
)
from containerlease_tui.tui.screens import (
    ActivityScreen,
    ConfirmScreen,
    ExtendScreen,
    HelpScreen,
    MainScreen,
    ReapersScreen,
    TeamScreen,
)
from containerlease_tui.tui.toasts import (
    Toast,
    container_toast,
    expiry_toasts,
    failed_key,
    no_logs_reason,
    toasts_for,
)
from containerlease_tui.tui.widgets import LogPane, ProvisionForm
from containerlease_tui.tui.widgets.lease_table import LeasesPane

if TYPE_CHECKING:
    from containerlease_tui.leases import (
        ProvisionRequest,
        PullProgress,
        ReaperStatus,
    )
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService

P = ParamSpec("P")
HERE = Path(__file__).parent
EVENT_BLOCK_MS = 2000
"""How long one read of the event stream waits (the store caps it below its socket timeout)."""
HEALTH_INTERVAL = 5.0
"""Seconds between health checks while everything is up."""
REAPER_STOP_TIMEOUT = 5.0
"""How long quitting waits for the in-app reaper to finish its pass."""
HAND_OVER_TIMEOUT = 3.0
"""How long quitting waits to learn whether a guardian reaper must be started."""
CONTAINER_POLL = 0.5
"""Seconds between two readings of the containers' real state (one engine listing each)."""
GC_THRESHOLDS = (20_000, 20, 20)
"""Python's defaults (700, 10, 10) collect many times per log batch of rendered lines."""


_GC_TUNED: list[bool] = []


def _tune_gc() -> None:
    """Once per process: what is alive once the app is up (Textual, the widgets, the modules)
    lives as long as the app, so it leaves the cyclic collector's sight, and the collector runs
    less often. Under a log flood this halves the key-to-repaint tail (docs/benchmarks.md)."""
    if _GC_TUNED:
        return
    _GC_TUNED.append(True)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _while_open(method: Callable[P, None]) -> Callable[P, None]:
    """Skip a handler once the app is quitting: its widgets may already be gone."""

    @functools.wraps(method)
    def handler(*args: P.args, **kwargs: P.kwargs) -> None:
        app = args[0]
        assert isinstance(app, ContainerLeaseApp)
        if app.quitting:
            return
        method(*args, **kwargs)

    return handler


STATE_FILE = "app.json"
"""What the app remembers between runs (the theme), in the user's state folder."""


def _read_state(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return one_line(text.splitlines()[0] if text else type(exc).__name__, 300)


class ContainerLeaseApp(App[None]):
    """Lease Docker containers from the keyboard: provision, watch, extend, delete, shell in."""

    TITLE = "ContainerLease"
    CSS_PATH = [
        HERE / "app.tcss",
        HERE / "screens" / "main.tcss",
        HERE / "widgets" / "provision_form.tcss",
        HERE / "widgets" / "lease_table.tcss",
        HERE / "widgets" / "log_pane.tcss",
        HERE / "widgets" / "status_bar.tcss",
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *GLOBAL_KEYS,
        LOGS_ALIAS,
        *(hidden(binding) for binding in LEASE_KEYS if binding.key != "enter"),
        *(replace(binding, show=False) for binding in VIEW_KEYS),
    ]
    """``n ? q`` in every footer; the lease keys work from anywhere but show on the table."""

    def __init__(
        self,
        settings: Settings,
        *,
        service: LeaseService | None = None,
        user: str | None = None,
        reaper: bool = True,
        clock: Callable[[], datetime] = utcnow,
        keymap_dir: Path | None = None,
        all_users: bool = False,
        state_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.keymap: Keymap = load_user_keymap(keymap_dir, settings.keymap)
        """The user's keys (the config's ``[keymap]`` and ``keymap.toml``) and their problems."""
        self.set_keymap(self.keymap.textual())
        self._all_users = all_users
        self._state_file = state_dir / STATE_FILE if state_dir is not None else None
        saved = _read_state(self._state_file).get("theme")
        if isinstance(saved, str) and saved in self.available_themes:
            self.theme = saved
        settings.display.apply()
        self.service: LeaseService | None = None
        self._given_service = service
        self._user = user
        self.reaper_enabled = reaper
        self.clock = clock
        self._reaper_stop = asyncio.Event()
        self._reaper_worker: Worker[None] | None = None
        self._redis: tuple[bool | None, str] = (None, "")
        self._docker: tuple[bool | None, str] = (None, "")
        self._connect_error = ""
        self._toasted: set[tuple[str, str]] = set()
        self._quitting = False
        self._reaper_error: str | None = None
        self._leaving = False
        self._signals: list[signal.Signals] = []
        self.exit_note: str | None = None
        """What the user is told once the app has closed (a guardian reaper started)."""
        self._container_trouble: dict[str, str] = {}
        """Lease id → what its container's trouble was last toasted as."""

    # --- screens ---------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast, shown literally: every toast here is built from data (lease names, errors,
        paths, reasons from Redis), so ``markup`` is ignored (a folder named ``x[/b]y`` must
        not crash the app, nor a ``[@click=…]`` become a link) and terminal controls are made
        visible. Widgets' ``notify`` comes here too."""
        super().notify(
            clean(message, newlines=True),
            title=clean(title, tabs=False),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    @property
    def quitting(self) -> bool:
        """True from the moment the app starts to quit (handlers then leave the UI alone)."""
        return self._quitting or not self.is_running or bool(getattr(self, "_exit", False))

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(self.settings)

    @property
    def main(self) -> MainScreen:
        """The main screen (whatever modal is on top of it)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def on_ready(self) -> None:
        """Start once the main screen is composed: the clock, then the service (in a worker)."""
        _tune_gc()
        if not self.is_headless:
            self._catch_hang_up()
        self.main.status.user = self._user or (
            self._given_service.user if self._given_service else ""
        )
        self.main.status.in_app_reaper = None
        self.main.status.reaper_disabled = not self.reaper_enabled
        self.theme_changed_signal.subscribe(self, self._save_theme)
        self.main.leases.show_all = self._all_users
        for problem in self.keymap.problems:
            self.notify(problem, title="Keymap", severity="warning", timeout=20)
        self._tick()
        self.set_interval(1.0, self._tick)
        if self._given_service is not None:
            self.post_message(ServiceReady(self._given_service))
        else:
            self._connect()

    @_while_open
    def _tick(self) -> None:
        now = self.clock()
        self.main.status.now = now
        pane = self.main.leases
        pane.tick(now)
        self._warn_expiring(now)

    def _save_theme(self, theme: Any) -> None:
        """The chosen theme, kept for the next start (the palette's "Change theme")."""
        if self._state_file is None:
            return
        state = _read_state(self._state_file)
        state["theme"] = str(getattr(theme, "name", theme))
        with contextlib.suppress(OSError):
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            tmp.replace(self._state_file)

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: Any) -> None:
        """Conflicts in the user's keymap are found and reported once, at load
        (``keys.build_keymap``), and the conflicting entries are not applied."""

    def _warn_expiring(self, now: datetime) -> None:
        """The app's own expiry warnings: every warning point of the user's leases, once per
        deadline, whether or not a reaper sends them (the reaper's ``expiring`` events share
        the keys, so each shows once); on opening, the tightest point already passed."""
        if self.service is None:
            return
        pane = self.main.leases
        for toast in expiry_toasts(
            pane.leases.values(),
            self.service.user,
            now,
            self.service.policy,
            self._toasted,
            self.keymap.label("extend"),
        ):
            self._show_toast(toast)

    # --- workers ---------------------------------------------------------------------------

    @work(group="connect", exclusive=True, exit_on_error=False)
    async def _connect(self) -> None:
        """Open the service (retrying with backoff); never in compose."""
        from containerlease_tui.service_api import connect_service

        backoff = Backoff()
        while True:
            try:
                # The daemon's client when it serves this machine, else direct (never blocks).
                self.post_message(ServiceReady(await connect_service(self.settings, self._user)))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                self.post_message(ServiceFailed(_short(exc)))
                await asyncio.sleep(delay)

    @work(group="events", exclusive=True, exit_on_error=False)
    async def _follow_events(self, service: LeaseService) -> None:
        """Read the event stream and reload the leases whenever it moves."""
        backoff = Backoff()
        after: str | None = None
        while True:
            try:
                if after is None:
                    after = await service.last_event_id()
                    leases = await service.list(all_users=True)
                    self.post_message(LeasesLoaded(leases))
                    backoff.reset()
                batch = await service.events(after=after, block_ms=EVENT_BLOCK_MS)
                moved, after = batch.cursor != after, batch.cursor
                if moved:
                    leases = await service.list(all_users=True)
                    self.post_message(LeasesLoaded(leases, list(batch.events)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                after = None
                delay = backoff.next()
                self.post_message(RedisLost(_short(exc)))
                await asyncio.sleep(delay)

    @work(group="health", exclusive=True, exit_on_error=False)
    async def _watch_health(self, service: LeaseService) -> None:
        """Ping Redis and Docker, say which reapers live; retry sooner while something is down."""
        backoff = Backoff(base=1.0, cap=HEALTH_INTERVAL * 3)
        while True:
            try:
                report = await service.health()
                reapers: ReaperStatus | None = None
                if report.redis_ok:
                    with contextlib.suppress(LeaseError):
                        reapers = await service.reaper_status()
                self.post_message(
                    HealthChanged(
                        report.redis_ok,
                        report.redis_detail,
                        report.docker_ok,
                        report.docker_detail,
                        reapers,
                    )
                )
                healthy = report.redis_ok and report.docker_ok
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(HealthChanged(False, _short(exc), False, _short(exc)))
                healthy = False
            if healthy:
                backoff.reset()
                await asyncio.sleep(HEALTH_INTERVAL)
            else:
                await asyncio.sleep(backoff.next())

    @work(group="containers", exclusive=True, exit_on_error=False)
    async def _watch_containers(self, service: LeaseService) -> None:
        """Follow what each lease's container really does (it may exit, be OOM-killed, be
        stopped or removed behind our back): the record keeps saying ``running``."""
        while True:
            leases = list(self.main.leases.leases.values()) if not self.quitting else []
            try:
                states = await service.container_states(leases)
            except asyncio.CancelledError:
                raise
            except Exception:
                states = None  # the health check reports Docker being down
            if states is not None:
                self.post_message(ContainersChecked(states))
            await asyncio.sleep(CONTAINER_POLL)

    @work(group="images", exclusive=True, exit_on_error=False)
    async def _load_images(self, service: LeaseService) -> None:
        """Which catalog images the engine has locally (for the picker)."""
        try:
            rows = await service.images()
        except Exception:
            return  # the picker keeps "?" for presence; the health check reports Docker
        self.post_message(ImagesLoaded(rows))

    @work(group="reaper", exclusive=True, exit_on_error=False)
    async def _run_reaper(self, service: LeaseService) -> None:
        """The in-app reaper, until the app quits; restarted with backoff if it fails."""
        backoff = Backoff(base=1.0, cap=30.0)
        while not self._reaper_stop.is_set():
            try:
                self.post_message(ReaperStateChanged(True))
                await service.run_reaper(self._reaper_stop)
                if self._reaper_stop.is_set():
                    break
                raise RuntimeError("the reaper stopped by itself")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.post_message(ReaperStateChanged(False, _short(exc)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reaper_stop.wait(), backoff.next())
        self.post_message(ReaperStateChanged(False))

    @work(group="provision", exit_on_error=False)
    async def _provision(self, service: LeaseService, request: ProvisionRequest) -> None:
        def progress(report: PullProgress) -> None:
            self.post_message(PullProgressed(report))

        def status(lease: Lease) -> None:
            self.post_message(ProvisionStatus(lease))

        try:
            lease = await service.provision(request, on_progress=progress, on_status=status)
        except asyncio.CancelledError:
            raise
        except ProvisionFailed as exc:
            self.post_message(ProvisionFinished(exc.lease, exc.reason))
            return
        except Exception as exc:  # refused before anything was made (input, quota, Redis)
            self.post_message(ProvisionFinished(None, _short(exc)))
            return
        self.post_message(ProvisionFinished(lease))

    @work(group="actions", exit_on_error=False)
    async def _act(self, service: LeaseService, what: str, lease: Lease, arg: str = "") -> None:
        """Extend, delete or restart a lease; the outcome is a toast."""
        try:
            if what == "extend":
                done = await service.extend(lease.id, arg)
                text = f"Extended {done.name} by {arg}: expires {done.expires_at:%H:%M:%S} UTC"
            elif what == "delete":
                done = await service.release(lease.id)
                text = f"Deleted {done.name}: its container is gone"
            elif what == "restart":
                done = await service.restart(lease.id)
                text = f"Restarted {done.name}"
            elif what == "stop":
                done = await service.stop(lease.id)
                text = f"Stopped {done.name}: its lease and its cost go on"
            elif what == "start":
                done = await service.start(lease.id)
                text = f"Started {done.name}"
            else:  # pragma: no cover - programming error
                raise ValueError(f"unknown action {what}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(ActionDone(f"Could not {what} {lease.name}: {_short(exc)}", "error"))
            return
        self.post_message(ActionDone(text, "information", done))

    # --- message handlers (they own the state) ---------------------------------------------

    @on(ServiceReady)
    @_while_open
    def _on_service_ready(self, message: ServiceReady) -> None:
        service = message.service
        self.service = service
        self._connect_error = ""
        main = self.main
        main.status.user = service.user
        main.leases.set_user(service.user)
        main.form.policy = service.policy
        main.form.validate_form()
        self._follow_events(service)
        self._watch_health(service)
        self._watch_containers(service)
        main.leases.policy = service.policy
        main.leases.reaper_running = self.reaper_enabled
        self._load_images(service)
        if self.reaper_enabled:
            self._reaper_worker = self._run_reaper(service)
        self._update_banner()

    @on(ServiceFailed)
    @_while_open
    def _on_service_failed(self, message: ServiceFailed) -> None:
        self._connect_error = message.error
        self._update_banner()

    @on(HealthChanged)
    @_while_open
    def _on_health(self, message: HealthChanged) -> None:
        was_docker = self._docker[0]
        self._redis = (message.redis_ok, message.redis_detail)
        self._docker = (message.docker_ok, message.docker_detail)
        status = self.main.status
        status.redis_ok = message.redis_ok
        status.docker_ok = message.docker_ok
        status.reaper = message.reaper
        if message.docker_ok and was_docker is False and self.service is not None:
            self._load_images(self.service)
        self._update_banner()

    @on(RedisLost)
    @_while_open
    def _on_redis_lost(self, message: RedisLost) -> None:
        self._redis = (False, message.error)
        self.main.status.redis_ok = False
        self._update_banner()

    @on(LeasesLoaded)
    @_while_open
    def _on_leases(self, message: LeasesLoaded) -> None:
        if self._redis[0] is not True:
            self._redis = (True, "connected")
            self.main.status.redis_ok = True
            self._update_banner()
        now = self.clock()
        pane = self.main.leases
        pane.set_leases(message.leases, now)
        if self.service is not None:
            self.main.form.refresh_outlook(self.service)  # spend and budget as they now stand
        self._toast_events(message.events, pane)
        self._warn_expiring(now)  # at once: on opening, a point may have passed already
        self._check_followed(pane)

    @on(ContainersChecked)
    @_while_open
    def _on_containers(self, message: ContainersChecked) -> None:
        pane = self.main.leases
        pane.set_containers(message.states)
        user = self.service.user if self.service else self._user
        for lease_id, state in message.states.items():
            lease = pane.leases.get(lease_id)
            if lease is None:
                continue
            trouble = state.describe() if state.trouble_for(lease) else None
            if trouble is None:
                self._container_trouble.pop(lease_id, None)
                continue
            if self._container_trouble.get(lease_id) == trouble:
                continue
            self._container_trouble[lease_id] = trouble
            if lease.owner == user:
                self._show_toast(container_toast(lease, state, self.keymap.label("stop_start")))

    @on(ImagesLoaded)
    @_while_open
    def _on_images(self, message: ImagesLoaded) -> None:
        self.main.form.set_images(message.rows)

    @on(ProvisionStatus)
    @_while_open
    def _on_provision_status(self, message: ProvisionStatus) -> None:
        self.main.form.show_status(message.lease)
        self.main.leases.update_lease(message.lease, self.clock())

    @on(PullProgressed)
    @_while_open
    def _on_pull(self, message: PullProgressed) -> None:
        self.main.form.show_progress(message.progress)

    @on(ProvisionFinished)
    @_while_open
    def _on_provisioned(self, message: ProvisionFinished) -> None:
        lease, error = message.lease, message.error
        main = self.main
        form = main.form
        if self.service is not None:
            self._load_images(self.service)  # a pull changed what is local
        if lease is not None:
            main.leases.update_lease(lease, self.clock())
        if error is None and lease is not None:
            form.finish(f"{lease.name} is running")
            self.notify(f"{lease_label(lease)} is running", title="Lease ready")
            main.leases.table.select_lease(lease.id)
            if main.narrow and main.form_open:
                # Done with the form: give the table its width back (and the cursor, unless
                # it went elsewhere meanwhile).
                in_form = form.has_focus_within or self.focused is None
                main.form_open = False
                if in_form:
                    main.leases.table.focus()
            return
        form.finish(f"provision failed: {error}" if error else "provision failed")
        if lease is not None:
            if failed_key(lease.id) in self._toasted:
                return
            self._toasted.add(failed_key(lease.id))
        reason = error or "unknown reason"
        # The same words as the event stream's toast (whichever of the two comes first).
        who = f"{lease.name}: " if lease is not None else ""
        self.notify(f"{who}provision failed: {reason}", severity="error", timeout=10)

    @on(ActionDone)
    @_while_open
    def _on_action_done(self, message: ActionDone) -> None:
        if message.lease is not None:
            self.main.leases.update_lease(message.lease, self.clock())
        self.notify(message.text, severity=message.severity)

    @on(ReaperStateChanged)
    @_while_open
    def _on_reaper_state(self, message: ReaperStateChanged) -> None:
        self.main.status.in_app_reaper = message.running
        if message.error and message.error != self._reaper_error:
            self.notify(f"In-app reaper failed (restarting): {message.error}", severity="error")
        self._reaper_error = message.error

    @on(ProvisionForm.Submitted)
    @_while_open
    def _on_provision_submitted(self, message: ProvisionForm.Submitted) -> None:
        if self.service is None:
            self.notify("Not connected yet: try again in a moment", severity="warning")
            return
        self.main.form.show_status_text("submitting…")
        self._provision(self.service, message.request)

    @on(DataTable.RowSelected, "#lease-table")
    @_while_open
    def _on_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_logs()

    # --- toasts ----------------------------------------------------------------------------

    def _toast_events(self, events: Iterable[LeaseEvent], pane: LeasesPane) -> None:
        user = self.service.user if self.service else self._user
        policy = self.service.policy if self.service else None
        extend_key = self.keymap.label("extend")
        for toast in toasts_for(events, pane.leases, user, self._toasted, policy, extend_key):
            self._show_toast(toast)

    def _show_toast(self, toast: Toast) -> None:
        if toast.once is not None:
            if toast.once in self._toasted:
                return
            self._toasted.add(toast.once)
        self.notify(toast.text, title=toast.title, severity=toast.severity, timeout=toast.timeout)

    def _check_followed(self, pane: LeasesPane) -> None:
        """Keep the log pane's lease current; follow again once its container (re)starts."""
        logs = self.main.logs
        shown = logs.lease
        if shown is None or self.service is None:
            return
        current = pane.leases.get(shown.id)
        if current is None or current == shown:
            return
        started = current.status is LeaseStatus.RUNNING and current.docker_id is not None
        if started and (shown.docker_id is None or logs.ended is not None):
            logs.follow(self.service, current)
        else:
            logs.lease = current
            reason = no_logs_reason(current)
            if reason is not None and current.docker_id is None:
                logs.stop()
                logs.ended = reason

    # --- banner ----------------------------------------------------------------------------

    def _update_banner(self) -> None:
        problems: list[Content] = []
        if self.service is None and self._connect_error:
            problems.append(
                Content.from_markup(
                    "[b]Cannot start:[/b] $error", error=one_line(self._connect_error)
                )
            )
        redis_ok, redis_detail = self._redis
        if redis_ok is False:
            problems.append(
                Content.from_markup(
                    "[b]Redis is down[/b] — leases cannot be listed or changed; retrying. $detail",
                    detail=one_line(redis_detail or redact_url(self.settings.redis.url)),
                )
            )
        docker_ok, docker_detail = self._docker
        if docker_ok is False:
            problems.append(
                Content.from_markup(
                    "[b]Docker is down[/b] — containers cannot be created or removed; retrying. "
                    "$detail",
                    detail=one_line(docker_detail or "unreachable"),
                )
            )
        self.main.show_banner(Content("\n").join(problems) if problems else None)

    # --- actions ---------------------------------------------------------------------------

    def _selected(self) -> Lease | None:
        lease = self.main.leases.table.selected
        if lease is None:
            self.notify("Select a lease first", severity="warning")
        return lease

    def _need_service(self) -> LeaseService | None:
        if self.service is None:
            self.notify("Not connected yet", severity="warning")
        return self.service

    def action_new_lease(self) -> None:
        """Open the provision form (on a narrow terminal it is hidden until now) and focus it."""
        main = self.main
        main.form_open = True
        self.call_after_refresh(main.form.focus_first)

    def action_leave(self) -> None:
        """Escape: out of the form or the log pane, back to the lease table."""
        main = self.main
        main.form_open = False
        main.leases.table.focus()

    def action_logs(self) -> None:
        """Follow the selected lease's output in the log pane."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        logs: LogPane = self.main.logs
        logs.follow(service, lease)
        reason = no_logs_reason(lease)
        if reason is not None and not lease.docker_id:
            logs.ended = reason  # say why there is nothing to follow
        logs.focus_view()

    def action_extend(self) -> None:
        """Ask how long to extend the selected lease by, then extend it."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        refused = service.allowed(lease, "extend")
        if refused:
            self.notify(refused, severity="warning")
            return

        def done(by: str | None) -> None:
            if by:
                self._act(service, "extend", lease, by)

        self.push_screen(ExtendScreen(lease, self.settings.limits, self.clock()), done)

    def action_delete(self) -> None:
        """Delete the selected lease (after confirming)."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        refused = service.allowed(lease, "delete")
        if refused:
            self.notify(refused, severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._act(service, "delete", lease)

        question = Content.from_markup(
            "Delete [b]$lease[/b] ($image, $owner)?\n"
            "Its container $container is removed; this cannot be undone.",
            lease=lease_label(lease),
            image=clean(lease.image, tabs=False),
            owner=clean(lease.owner, tabs=False),
            container=clean(lease.short_docker_id or "(none)", tabs=False),
        )
        self.push_screen(ConfirmScreen("Delete lease", question), done)

    def action_restart(self) -> None:
        """Restart the selected lease's container."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        self._act(service, "restart", lease)
        self.notify(f"Restarting {lease.name}…")

    def action_stop_start(self) -> None:
        """Stop the selected lease's container, or start it again if it is not running."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        state = self.main.leases.containers.get(lease.id)
        running = lease.status is LeaseStatus.RUNNING and (state is None or state.running)
        what: Literal["stop", "start"] = "stop" if running else "start"
        refused = service.allowed(lease, what)
        if refused:
            self.notify(refused, severity="warning")
            return
        self._act(service, what, lease)
        self.notify(f"{'Stopping' if running else 'Starting'} {lease.name}…")

    def action_sort(self) -> None:
        """Sort the table by the next column: time left, cost, owner, status, then as usual."""
        pane = self.main.leases
        pane.next_sort()
        self.notify(f"Leases sorted by {pane.sort_name}", timeout=3)

    async def action_shell(self) -> None:
        """Suspend the app and open an interactive shell in the selected lease's container."""
        lease = self._selected()
        service = self._need_service()
        if lease is None or service is None:
            return
        refused = service.allowed(lease, "shell")
        if refused:
            self.notify(refused, severity="warning")
            return
        try:
            # Refused here, before the terminal is handed over: a container stopped or
            # removed behind our back (the record may still say running).
            await service.check_shell(lease)
        except Exception as exc:
            startable = lease.status in (LeaseStatus.RUNNING, LeaseStatus.STOPPED)
            hint = (
                f" — press {self.keymap.label('stop_start')} to start it"
                if startable and "not running" in str(exc)
                else ""
            )
            self.notify(f"No shell in {lease.name}: {_short(exc)}{hint}", severity="warning")
            return
        code, failure = await self._shell_suspended(service, lease)
        self.refresh(layout=True)
        if failure is not None:
            self.notify(f"Shell failed: {_short(failure)}", severity="error")
            return
        self.notify(f"Shell in {lease.name} exited ({code})")

    async def _shell_suspended(
        self, service: LeaseService, lease: Lease
    ) -> tuple[int | None, BaseException | None]:
        """Run the shell with the app suspended; the terminal always comes back.

        Textual's ``App.suspend`` resumes the app only when its block ends normally: an
        exception raised inside it (a shell that fails to start) would leave the driver
        suspended and the app frozen for good, blocked writing to a stopped output thread.
        So nothing may leave the block by raising: the failure is returned instead.
        """
        code: int | None = None
        failure: BaseException | None = None
        # No repaint while the shell owns the terminal (workers keep running meanwhile).
        cancelled = False
        try:
            with self.suspend(), self.batch_update():
                try:
                    code = await service.shell(lease)
                except asyncio.CancelledError:
                    cancelled = True
                except Exception as exc:
                    failure = exc
        except SuspendNotSupported as exc:  # no terminal to hand over (e.g. headless)
            failure = exc
        if cancelled:
            raise asyncio.CancelledError
        return code, failure

    def action_toggle_all(self) -> None:
        """Show everybody's leases, or only mine."""
        pane = self.main.leases
        pane.show_all = not pane.show_all

    def action_filter(self) -> None:
        """Filter the leases by text."""
        self.main.leases.focus_filter()

    def _open_view(self, make: Callable[[LeaseService], Screen[None]], kind: type) -> None:
        service = self._need_service()
        if service is None or isinstance(self.screen, kind):
            return
        self.push_screen(make(service))

    def action_activity(self) -> None:
        """The Activity screen: every event, live."""
        self._open_view(ActivityScreen, ActivityScreen)

    def action_team(self) -> None:
        """The Team screen: spend, budget, capacity."""
        self._open_view(TeamScreen, TeamScreen)

    def action_reapers(self) -> None:
        """The Reapers screen: who cleans up, and when next."""
        self._open_view(ReapersScreen, ReapersScreen)

    def action_help(self) -> None:
        """Show every key."""
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_sections(), self.reaper_note()))

    def reaper_note(self) -> Content:
        """The reaper's state in full (the status bar may have to shorten it)."""
        return Content.from_markup(
            "[b]Reaper:[/b] $line. A reaper removes leases at their deadline; "
            "the app runs one unless started with --no-reaper.",
            line=one_line(self.main.status.reaper_text),
        )

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The keys of each part of the app, from the bindings themselves (``keys.py``)."""

        def rows(
            bindings: Iterable[Binding], extra: dict[str, str] | None = None
        ) -> list[tuple[str, str]]:
            keys: dict[str, list[str]] = {}
            what: dict[str, str] = {}
            for binding in bindings:
                if not binding.description:
                    continue
                action = binding.action.removeprefix("app.")
                keys.setdefault(action, []).append(key_label(binding, self.keymap))
                what.setdefault(action, binding.tooltip or binding.description)
            listed = [(", ".join(dict.fromkeys(keys[a])), what[a]) for a in keys]
            return listed + [(keys, what) for keys, what in (extra or {}).items()]

        pause = next(b for b in LOG_KEYS if b.action == "pause")
        log_keys = [b for b in LOG_KEYS if b.action != "resume"]
        log_keys[log_keys.index(pause)] = replace(pause, tooltip="Pause / resume following")
        return [
            (
                "Everywhere (except while typing in a box)",
                rows(
                    GLOBAL_KEYS,
                    {"ctrl+p": "Command palette: every action by name", "ctrl+q": "Quit"},
                ),
            ),
            (
                "Leases table (these work from the log pane too)",
                rows(
                    [*LEASE_KEYS[:1], LOGS_ALIAS, *LEASE_KEYS[1:], *TABLE_NAV],
                    {"↑ ↓": "Select a lease (or click it)"},
                ),
            ),
            ("Views (v, T, R)", rows(VIEW_KEYS)),
            ("Activity (after v)", rows(ACTIVITY_KEYS)),
            ("Team and Reapers (after T or R)", rows(VIEW_BACK)),
            ("Logs pane (after enter or l)", rows(log_keys)),
            ("Provision form (after n)", rows([FORM_SUBMIT, *FORM_KEYS])),
            ("Filter boxes (/ and f)", rows(FILTER_KEYS)),
            ("Dialogs", [("y / n, esc", "Confirm / cancel")]),
        ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands, then every key of the app by name (the help screen's list)."""
        yield from super().get_system_commands(screen)

        def app_command(binding: Binding, keys: str) -> SystemCommand:
            action = binding.action.removeprefix("app.")
            return SystemCommand(
                f"{binding.description} ({keys})",
                binding.tooltip or binding.description,
                lambda: self.run_action(action),
            )

        yield app_command(GLOBAL_KEYS[0], key_label(GLOBAL_KEYS[0], self.keymap))
        for binding in LEASE_KEYS:
            keys = key_label(binding, self.keymap)
            if binding.action == "app.logs":
                keys = f"{keys}, {key_label(LOGS_ALIAS, self.keymap)}"
            yield app_command(binding, keys)
        for binding in VIEW_KEYS:
            yield app_command(binding, key_label(binding, self.keymap))
        yield app_command(GLOBAL_KEYS[1], key_label(GLOBAL_KEYS[1], self.keymap))
        logs = self.main.logs
        for binding in LOG_KEYS:
            if binding.action in ("pause", "resume") or binding.action.startswith("app."):
                continue
            action = binding.action
            yield SystemCommand(
                f"Logs: {binding.description} ({key_label(binding, self.keymap)})",
                binding.tooltip or binding.description,
                functools.partial(logs.run_action, action),
            )
        yield SystemCommand(
            f"Logs: Pause / resume ({self.keymap.label('log_pause')})",
            "Pause or resume following the output",
            functools.partial(logs.run_action, "toggle_pause"),
        )

    # --- shutdown --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop the in-app reaper (letting it finish a removal), hand the leases over to a
        guardian reaper if no other reaper is alive, and quit."""
        await self._stop_reaper()
        await self._hand_over()
        self.exit()

    async def _hand_over(self) -> None:
        """No lease is left without an enforcer: the service starts the guardian if needed."""
        if self.service is None:
            return
        with contextlib.suppress(Exception):
            started = await asyncio.wait_for(self.service.ensure_reaper(), HAND_OVER_TIMEOUT)
            self.exit_note = started.describe() if started else None

    def _on_hang_up(self) -> None:
        """SIGHUP (the SSH session dropped) or SIGTERM: leave as `q` does, guardian included,
        instead of dying on the spot with the leases unattended."""
        if not self._leaving:
            self._leaving = True
            self.run_worker(self.action_quit(), group="quit", exit_on_error=False)

    def _catch_hang_up(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_hang_up)
                self._signals.append(sig)

    async def _stop_reaper(self) -> None:
        self._quitting = True
        self._reaper_stop.set()
        worker = self._reaper_worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), REAPER_STOP_TIMEOUT)

    async def on_unmount(self) -> None:
        self._reaper_stop.set()
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if self.service is not None and self._given_service is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service.close(), 5.0)


def create_app(
    settings: Settings,
    *,
    service: LeaseService | None = None,
    user: str | None = None,
    reaper: bool = True,
    clock: Callable[[], datetime] = utcnow,
    keymap_dir: Path | None = None,
    all_users: bool = False,
    state_dir: Path | None = None,
) -> ContainerLeaseApp:
    """The app the CLI runs: ``create_app(settings, reaper=not no_reaper).run()``.

    ``service``: an open :class:`LeaseService` to use (tests); by default the app opens one in a
    worker and closes it on exit. ``user``: act as this user (default: the OS user).
    ``reaper``: run a reaper inside the app. ``clock``: what "now" is (countdowns, costs).
    ``keymap_dir``: the folder whose ``keymap.toml`` is read (the CLI passes the user's config
    folder; by default none, only the config's ``[keymap]``). ``all_users``: start on
    everybody's leases (by default on the user's own, as ``containerlease ls`` does).
    ``state_dir``: where the chosen theme is kept across runs (the CLI passes the user's state
    folder; by default nowhere).
    """
    return ContainerLeaseApp(
        settings,
        service=service,
        user=user,
        reaper=reaper,
        clock=clock,
        keymap_dir=keymap_dir,
        all_users=all_users,
        state_dir=state_dir,
    )
