"""The core never imports Textual: only ``containerlease_tui.tui`` may.

Checked in a fresh interpreter, since this test process has long since imported everything.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

CORE = [
    "backoff",
    "config",
    "display",
    "durations",
    "errors",
    "models",
    "policy",
    "redact",
    "sanitize",
    "safefile",
    "embedded",
    "doctor",
    "store",
    "store.keys",
    "store.scripts",
    "store.errors",
    "store.codec",
    "store.base",
    "store.transaction",
    "store.budget",
    "store.records",
    "store.deadlines",
    "store.events",
    "store.coordination",
    "store.protocol",
    "store.lease_store",
    "engine",
    "labels",
    "leases",
    "reaper",
    "service_api",
    "daemon.server",
    "daemon.client",
    "cli",
]
REQUIRED = {"config", "models", "durations"}

PROBE = """
import importlib, json, sys
name = sys.argv[1]
importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print(json.dumps(leaked))
"""


def _present(module: str) -> bool:
    return importlib.util.find_spec(f"containerlease_tui.{module}") is not None


def test_required_core_modules_exist() -> None:
    for module in REQUIRED:
        assert _present(module), f"containerlease_tui.{module} is missing"


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_not_import_textual(module: str) -> None:
    if module not in REQUIRED and not _present(module):
        pytest.skip(f"containerlease_tui.{module} does not exist yet")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, f"containerlease_tui.{module}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"containerlease_tui.{module} imports Textual: {leaked}"


def test_all_present_core_modules_together() -> None:
    present = [f"containerlease_tui.{m}" for m in CORE if _present(m)]
    code = (
        "import importlib, sys\n"
        f"for name in {present!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
