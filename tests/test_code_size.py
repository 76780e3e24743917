"""Files in nhr_ray/ stay small: at most 300 lines a file and 60 lines a function (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES, MAX_FUNCTION_LINES = 300, 60


def long_files() -> list[str]:
    out = []
    for p in sorted((ROOT / "nhr_ray").rglob("*.py")):
        n = len(p.read_text().splitlines())
        if n > MAX_FILE_LINES:
            out.append(f"{p.relative_to(ROOT)}: {n} lines")
    return out


def long_functions() -> list[str]:
    out = []
    for p in sorted((ROOT / "nhr_ray").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    return out


def test_no_file_over_300_lines():
    assert long_files() == []


def test_no_function_over_60_lines():
    assert long_functions() == []
