"""The Textual app (everything Textual lives under this package)."""

from containerlease_tui.tui.app import ContainerLeaseApp, create_app

__all__ = ["ContainerLeaseApp", "create_app"]
