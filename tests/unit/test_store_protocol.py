"""``Store`` lists exactly what LeaseService and the reaper call on the store, with the same
signatures as LeaseStore's (mypy checks assignability; this checks the list itself)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from containerlease_tui.store import LeaseStore, Store

PACKAGE = Path(__file__).resolve().parents[2] / "containerlease_tui"
# Store methods its users are about to call (reindex replaces the reaper's identity update).
PLANNED: set[str] = set()


def _protocol_methods() -> set[str]:
    return {
        name
        for name, value in vars(Store).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


def _called_on_store() -> set[str]:
    sources = [
        PACKAGE / "leases.py",
        *PACKAGE.glob("service/**/*.py"),
        *PACKAGE.glob("reaper/**/*.py"),
    ]
    called: set[str] = set()
    for path in sources:
        if path.exists():
            # `x.store.method(`: calls, not `@store.setter` or `import ...store.protocol`.
            called |= set(re.findall(r"(?<![@\w.])(?:\w+\.)*store\.([a-z_]+)\(", path.read_text()))
    return called


def test_the_protocol_lists_what_the_service_and_the_reaper_call() -> None:
    called = _called_on_store()
    assert called <= _protocol_methods(), called - _protocol_methods()
    assert _protocol_methods() <= called | PLANNED, _protocol_methods() - called - PLANNED


def test_lease_store_has_every_protocol_method_with_its_signature() -> None:
    for name in _protocol_methods():
        expected = inspect.signature(getattr(Store, name))
        actual = inspect.signature(getattr(LeaseStore, name))
        assert str(actual) == str(expected), name
