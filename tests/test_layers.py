"""The layers stay layers: a config loads without the backends, OpenCV or Ray; backends reach the
runtime only through their context's ports; stages import no Ray; nhr_ray's module-level imports
form no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nhr_ray"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, module_level: bool):
    """Import statements; with module_level, only those that run when the module is imported
    (top level, class bodies, if/try blocks; not function bodies, not `if TYPE_CHECKING:`)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if module_level and isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, module_level: bool = True) -> set[str]:
    """Modules (any package) that `name` imports; for nhr_ray ones, the exact module file."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text()), module_level):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        subs = {f"{base}.{a.name}" for a in node.names} & MODULES.keys()
        out.update(subs)
        if len(subs) < len(node.names):  # names defined in `base` itself (a package reached only for a
            out.add(base)  # submodule is its parent, imported first, not part of a cycle)
    return out


def test_loading_and_validating_a_config_imports_no_backend_no_opencv_no_ray():
    code = (
        "import sys, nhr_ray.config as c\n"
        "for preset in c.presets():\n"
        "    c.load_config(None, preset=preset)\n"
        "bad = sorted(m for m in sys.modules if m in ('cv2', 'ray', 'torch') or m.startswith('nhr_ray.backends.sim.') "
        "or m == 'nhr_ray.backends.sim' or m.startswith('nhr_ray.runtime'))\n"
        "print(bad)\n"
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_nhr_ray_module_level_imports_form_no_cycle():
    graph = {m: {i for i in imports_of(m) if i in MODULES and i != m} for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_stages_import_no_ray_anywhere():
    bad = {m: sorted(i for i in imports_of(m, module_level=False) if i == "ray" or i.startswith("ray."))
           for m in MODULES if m.startswith("nhr_ray.stages")}  # fmt: skip
    assert not {m: v for m, v in bad.items() if v}


def test_backends_reach_the_runtime_only_through_ports():
    """No backend imports nhr_ray.runtime (anywhere) or Ray at module level: the rate limiters and
    the spend ledger come in through BackendContext.limits."""
    found = {}
    for m in MODULES:
        if not m.startswith("nhr_ray.backends"):
            continue
        anywhere = imports_of(m, module_level=False)
        top = imports_of(m)
        bad = sorted(i for i in anywhere if i.startswith("nhr_ray.runtime")) + sorted(
            i for i in top if i == "ray" or i.startswith("ray.")
        )
        if bad:
            found[m] = bad
    assert not found
