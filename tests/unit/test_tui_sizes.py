"""The TUI stays in pieces one can read: no class over 400 lines, no function over 80 unless a
``# long: reason`` comment on its ``def`` line says why (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import containerlease_tui.tui

TUI = Path(containerlease_tui.tui.__file__).parent
MAX_CLASS = 400
MAX_FUNCTION = 80


def oversized(source: str, name: str) -> list[str]:
    """What in ``source`` is too long: one line per class or function, with its length."""
    lines = source.splitlines()
    found: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            if length > MAX_CLASS:
                found.append(f"{name}:{node.lineno} class {node.name}: {length} lines")
            continue
        # The def line: from ``def`` to the line before the body (a long signature wraps).
        header = lines[node.lineno - 1 : max(node.body[0].lineno - 1, node.lineno)]
        if length > MAX_FUNCTION and not any("# long:" in line for line in header):
            found.append(f"{name}:{node.lineno} def {node.name}: {length} lines")
    return found


def test_every_tui_module_is_checked() -> None:
    files = sorted(TUI.rglob("*.py"))
    assert TUI / "app.py" in files
    assert TUI / "parts" / "base.py" in files


def test_no_class_or_function_in_the_tui_is_too_long() -> None:
    found = [
        problem
        for path in sorted(TUI.rglob("*.py"))
        for problem in oversized(path.read_text(encoding="utf-8"), str(path.relative_to(TUI)))
    ]
    assert found == []


def test_the_check_finds_a_long_class_and_a_long_function() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION))
    long_def = "def f() -> None:\n" + body
    assert oversized(long_def, "m.py") == [f"m.py:1 def f: {MAX_FUNCTION + 1} lines"]
    assert oversized(long_def.replace(":\n", ":  # long: a table\n", 1), "m.py") == []
    short_def = "def f() -> None:\n" + "".join(body.splitlines(keepends=True)[:-1])
    assert oversized(short_def, "m.py") == []
    methods = "".join(f"    def m{i}(self) -> None: ...\n" for i in range(MAX_CLASS))
    long_class = "class C:\n" + methods
    assert oversized(long_class, "m.py") == [f"m.py:1 class C: {MAX_CLASS + 1} lines"]
