"""Connection state: the service, Redis, Docker and the reaper as the workers report them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from textual import on
from textual.content import Content

from containerlease_tui.models import LeaseEvent, LeaseStatus
from containerlease_tui.redact import redact_url
from containerlease_tui.sanitize import one_line
from containerlease_tui.tui.messages import (
    ContainersChecked,
    HealthChanged,
    ImagesLoaded,
    LeasesLoaded,
    ReaperStateChanged,
    RedisLost,
    ServiceFailed,
    ServiceReady,
)
from containerlease_tui.tui.parts.base import while_open
from containerlease_tui.tui.parts.workers import WorkersPart
from containerlease_tui.tui.toasts import (
    container_toast,
    expiry_toasts,
    no_logs_reason,
    toasts_for,
)
from containerlease_tui.tui.widgets.lease_table import LeasesPane


class StatusPart(WorkersPart):
    """Connection state and what shows it: the status bar, the banner, the leases as loaded,
    the containers' trouble and the toasts of events and expiries."""

    @while_open
    def _tick(self) -> None:
        now = self.clock()
        self.main.status.now = now
        pane = self.main.leases
        pane.tick(now)
        self._warn_expiring(now)

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

    @on(ServiceReady)
    @while_open
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
    @while_open
    def _on_service_failed(self, message: ServiceFailed) -> None:
        self._connect_error = message.error
        self._update_banner()

    @on(HealthChanged)
    @while_open
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
    @while_open
    def _on_redis_lost(self, message: RedisLost) -> None:
        self._redis = (False, message.error)
        self.main.status.redis_ok = False
        self._update_banner()

    @on(LeasesLoaded)
    @while_open
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
    @while_open
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
    @while_open
    def _on_images(self, message: ImagesLoaded) -> None:
        self.main.form.set_images(message.rows)

    @on(ReaperStateChanged)
    @while_open
    def _on_reaper_state(self, message: ReaperStateChanged) -> None:
        self.main.status.in_app_reaper = message.running
        if message.error and message.error != self._reaper_error:
            self.notify(f"In-app reaper failed (restarting): {message.error}", severity="error")
        self._reaper_error = message.error

    # --- toasts ----------------------------------------------------------------------------

    def _toast_events(self, events: Iterable[LeaseEvent], pane: LeasesPane) -> None:
        user = self.service.user if self.service else self._user
        policy = self.service.policy if self.service else None
        extend_key = self.keymap.label("extend")
        for toast in toasts_for(events, pane.leases, user, self._toasted, policy, extend_key):
            self._show_toast(toast)

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
