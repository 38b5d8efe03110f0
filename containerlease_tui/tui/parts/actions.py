"""The lease actions: what the lease keys do, and what the app does with their outcomes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from textual import on
from textual.app import SuspendNotSupported
from textual.content import Content
from textual.widgets import DataTable

from containerlease_tui.display import first_published
from containerlease_tui.models import Lease, LeaseStatus
from containerlease_tui.sanitize import clean
from containerlease_tui.tui.formatting import lease_label
from containerlease_tui.tui.messages import (
    ActionDone,
    ProvisionFinished,
    ProvisionStatus,
    PullProgressed,
)
from containerlease_tui.tui.parts.base import short, while_open
from containerlease_tui.tui.parts.workers import WorkersPart
from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen
from containerlease_tui.tui.toasts import failed_key, no_logs_reason
from containerlease_tui.tui.widgets import LogPane, ProvisionForm

if TYPE_CHECKING:
    from containerlease_tui.service_api import LeaseServiceAPI as LeaseService


class ActionsPart(WorkersPart):
    """The lease actions (provision, logs, extend, delete, restart, stop/start, shell, sort,
    filter) and the handlers of their outcomes."""

    @on(ProvisionStatus)
    @while_open
    def _on_provision_status(self, message: ProvisionStatus) -> None:
        self.main.form.show_status(message.lease)
        self.main.leases.update_lease(message.lease, self.clock())

    @on(PullProgressed)
    @while_open
    def _on_pull(self, message: PullProgressed) -> None:
        self.main.form.show_progress(message.progress)

    @on(ProvisionFinished)
    @while_open
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
    @while_open
    def _on_action_done(self, message: ActionDone) -> None:
        if message.lease is not None:
            self.main.leases.update_lease(message.lease, self.clock())
        self.notify(message.text, severity=message.severity)

    @on(ProvisionForm.Submitted)
    @while_open
    def _on_provision_submitted(self, message: ProvisionForm.Submitted) -> None:
        if self.service is None:
            self.notify("Not connected yet: try again in a moment", severity="warning")
            return
        self.main.form.show_status_text("submitting…")
        self._provision(self.service, message.request)

    @on(DataTable.RowSelected, "#lease-table")
    @while_open
    def _on_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_logs()

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

    def action_copy_port(self) -> None:
        """Copy where the selected lease's first port is published (``127.0.0.1:49153``) to
        the clipboard, through the terminal (OSC 52: works over SSH too)."""
        lease = self._selected()
        if lease is None:
            return
        first = first_published(lease.ports) if lease.status is LeaseStatus.RUNNING else None
        if first is None:
            self.notify(f"{lease_label(lease)}: no published port", severity="warning")
            return
        port, where = first
        self.copy_to_clipboard(where)
        self.notify(f"Copied {where} — port {port} of {lease_label(lease)}")

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
            self.notify(f"No shell in {lease.name}: {short(exc)}{hint}", severity="warning")
            return
        code, failure = await self._shell_suspended(service, lease)
        self.refresh(layout=True)
        if failure is not None:
            self.notify(f"Shell failed: {short(failure)}", severity="error")
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
