"""Guards on the runtime's layout (issue 16): the rooms everyone passes through stay small enough to
read. No file in nhr_ray/runtime or nhr_ray/scheduler over 300 lines, and no function over 60 lines
in them or in the stage table; the driver spells no actor method as a string."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "nhr_ray"
GUARDED = sorted([*(ROOT / "runtime").glob("*.py"), *(ROOT / "scheduler").glob("*.py"), ROOT / "stages" / "table.py"])


def test_no_runtime_or_scheduler_file_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in GUARDED if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_no_function_over_60_lines():
    long = {}
    for p in GUARDED:
        for f in ast.walk(ast.parse(p.read_text())):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > 60:
                long[f"{p.relative_to(ROOT)}:{f.name}"] = f.end_lineno - f.lineno + 1
    assert not long, long


def test_the_streaming_phase_calls_actors_through_typed_pool_methods():
    """No `pool.call("method", ...)` in the driver and its work records: typed Pool calls only."""
    for path in [ROOT / "runtime" / n for n in ("driver.py", "work.py", "startup.py", "results.py", "finalize.py")] \
            + sorted((ROOT / "runtime" / "feeders").glob("*.py")):  # fmt: skip
        name = path.name
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "call" and n.args and isinstance(n.args[0], ast.Constant)]  # fmt: skip
        assert not calls, f"{name}:{calls[0].lineno}"


def test_the_driver_loop_stays_small():
    from nhr_ray.runtime.driver import Miner

    src = (ROOT / "runtime" / "driver.py").read_text()
    run = next(f for f in ast.walk(ast.parse(src)) if isinstance(f, ast.FunctionDef) and f.name == "run")
    assert run.end_lineno - run.lineno + 1 <= 30
    assert "nonlocal" not in src
    assert len([k for k, v in vars(Miner).items() if callable(v)]) <= 25


def test_the_starter_uses_the_pools_public_methods_only():
    tree = ast.parse((ROOT / "runtime" / "starter.py").read_text())
    private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
               and not (isinstance(n.value, ast.Name) and n.value.id == "self")]  # fmt: skip
    assert not private, private


def test_a_pool_keeps_one_slot_per_actor_and_no_parallel_lists():
    """Pool state per actor lives in one Slot (state, handle, load, node, ...), not in lists kept in
    step by hand; and the Pool offers no call-a-method-by-name escape hatch."""
    from nhr_ray.runtime.pool import Pool, Slot, State

    tree = ast.parse((ROOT / "runtime" / "pool.py").read_text())
    init = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    lists = [t.attr for n in ast.walk(init) if isinstance(n, (ast.Assign, ast.AnnAssign))
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
             if isinstance(t, ast.Attribute) and isinstance(n.value, (ast.List, ast.ListComp))]  # fmt: skip
    assert lists == ["slots"], lists
    assert not hasattr(Pool, "call")
    assert {f for f in Slot.__dataclass_fields__} >= {"state", "handle", "load", "node", "last_busy"}
    assert [s.value for s in State] == ["waiting", "loading", "ready", "retired", "dead"]
