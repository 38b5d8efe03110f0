"""The suite's own scheduling: the groups tests/conftest.py assigns reach pytest-xdist."""

from __future__ import annotations

import pytest


def test_a_tui_test_runs_in_the_tui_group(request: pytest.FixtureRequest) -> None:
    mark = request.node.get_closest_marker("xdist_group")
    assert mark is not None and mark.args == ("tui",)
    if getattr(request.config.option, "loadgroup", False):
        # xdist schedules by the node id's suffix; a mark added too late leaves it bare.
        assert request.node.nodeid.endswith("@tui"), request.node.nodeid
