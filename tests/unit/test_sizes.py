"""The rooms stay small (issue 17): no module of ``engine``, ``geodata``, ``jobs`` or
``dashboard`` over :data:`MAX_MODULE_LINES` lines, and no function over
:data:`MAX_FUNCTION_LINES` lines (its docstring included) unless a comment
``# long-function: <reason>`` stands on one of the lines right above its ``def`` (or its
decorators). Alembic migrations are left out: each is one revision, written once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "geodata", "jobs", "dashboard")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
REASON = "# long-function:"


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if "migrations" not in p.relative_to(ROOT).parts]


def _long_functions(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        n = node.end_lineno - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = lines[max(0, first - 4):first - 1]
        if n > MAX_FUNCTION_LINES and not any(REASON in line for line in above):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_module_is_over_the_limit():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _sources()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not big, (f"modules over {MAX_MODULE_LINES} lines; split them by concern (see "
                     f"deploy/docs/explanation/architecture.md):\n" + "\n".join(big))


def test_no_function_is_over_the_limit_without_a_reason():
    long = [f for p in _sources() for f in _long_functions(p)]
    assert not long, (f"functions over {MAX_FUNCTION_LINES} lines; split them into steps, or "
                      f"write why not in a '{REASON} ...' comment right above the def:\n"
                      + "\n".join(long))


def test_the_checks_see_a_long_function_and_its_reason(tmp_path, monkeypatch):
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES))
    (tmp_path / "engine").mkdir()
    src = tmp_path / "engine" / "m.py"
    src.write_text(f"def f():\n{body}\n\n\n{REASON} one loop read top to bottom\n"
                   f"def g():\n{body}\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert [f.split()[1] for f in _long_functions(src)] == ["f"]
