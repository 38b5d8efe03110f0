"""Screens: the main one, and the confirm, extend and help modals."""

from containerlease_tui.tui.screens.confirm import ConfirmScreen
from containerlease_tui.tui.screens.extend import ExtendScreen
from containerlease_tui.tui.screens.help import HelpScreen
from containerlease_tui.tui.screens.main import MainScreen

__all__ = ["ConfirmScreen", "ExtendScreen", "HelpScreen", "MainScreen"]
