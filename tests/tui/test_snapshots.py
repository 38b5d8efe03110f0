"""Snapshot tests of the app's screens: fixed clock, fixed leases, no Redis or Docker.

The scenes are shared with ``scripts/screenshots``. After an intended change regenerate with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs under
``tests/tui/__snapshots__/``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .scenes import SCENES

SnapCompare = Callable[..., bool]


@pytest.mark.parametrize("name", list(SCENES))
def test_scene(snap_compare: SnapCompare, name: str) -> None:
    scene = SCENES[name]
    assert snap_compare(scene.app(), terminal_size=scene.size, run_before=scene.steps)
