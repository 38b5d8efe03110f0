"""Widgets of the ContainerLease app."""

from containerlease_tui.tui.widgets.lease_table import LeasesPane, LeaseTable
from containerlease_tui.tui.widgets.log_pane import LogPane
from containerlease_tui.tui.widgets.provision_form import ProvisionForm
from containerlease_tui.tui.widgets.status_bar import StatusBar

__all__ = ["LeaseTable", "LeasesPane", "LogPane", "ProvisionForm", "StatusBar"]
