"""The core stays in pieces one can read, as the TUI does (``test_tui_sizes.py``, whose checker
this reuses): no class over 400 lines, no function over 80 without a ``# long:`` reason."""

from __future__ import annotations

from pathlib import Path

import containerlease_tui
from tests.unit.test_tui_sizes import oversized

PACKAGE = Path(containerlease_tui.__file__).parent


def test_no_class_or_function_in_the_package_is_too_long() -> None:
    found = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in oversized(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_the_service_is_checked() -> None:
    files = set(PACKAGE.rglob("*.py"))
    assert PACKAGE / "service" / "lease_service.py" in files
    assert PACKAGE / "service" / "provisioning.py" in files
