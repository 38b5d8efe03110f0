"""Screens: the main one; the confirm, extend and help modals; Activity, Team and Reapers."""

from containerlease_tui.tui.screens.activity import ActivityScreen
from containerlease_tui.tui.screens.confirm import ConfirmScreen
from containerlease_tui.tui.screens.extend import ExtendScreen
from containerlease_tui.tui.screens.help import HelpScreen
from containerlease_tui.tui.screens.main import MainScreen
from containerlease_tui.tui.screens.views import ReapersScreen, TeamScreen

__all__ = [
    "ActivityScreen",
    "ConfirmScreen",
    "ExtendScreen",
    "HelpScreen",
    "MainScreen",
    "ReapersScreen",
    "TeamScreen",
]
