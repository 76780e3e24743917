"""A finished run given a larger budget continues: the same queue (restored from the scheduler's
checkpoint), nothing drawn twice, every triplet of the first part kept byte for byte, spend within
one batch of each budget, the manifest telling both parts. No more budget: nothing to do (exit 0)."""

import json
import os
import subprocess
import sys

import pytest
import ray

from conftest import small_config
from nhr_ray.runtime.pipeline import NothingToDo, run
from test_kill_anywhere import _attempt_ids, _digest

SETS = {"task.num_scenes": 8, "task.items_per_request": 4, "sources.seeds_per_prompt": 2, "output.shard_rows": 8,
        "roles.editor.actors": 1, "scheduler.batch_size": 2}  # fmt: skip
B1, B2 = 0.15, 0.3  # GPU-hours: both well short of the queue (~0.6)
BATCH_H = 2 * 5 * 12 / 3600  # one draw: 2 pairs x M=5 attempts x ~12 GPU-s (the simulation's dearest attempts)


def _cfg(budget):
    return small_config(**SETS, **{"scheduler.budget_gpu_hours": budget})


@pytest.fixture(scope="module")
def extended(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "run"
    run(_cfg(B1), out)
    first = {"triplets": _digest(out), "attempts": set(_attempt_ids(out)),
             "manifest": json.loads((out / "manifest.json").read_text())}
    run(_cfg(B2), out)
    return out, first


def test_more_budget_extends_a_finished_run(extended):
    out, first = extended
    p1 = first["manifest"]["parts"]
    assert len(p1) == 1 and p1[0]["ended_by"] == "budget" and abs(p1[0]["spent_gpu_hours"] - B1) <= BATCH_H
    m = json.loads((out / "manifest.json").read_text())
    parts = m["parts"]
    assert [p["budget_gpu_hours"] for p in parts] == [B1, B2] and parts[0] == p1[0]
    assert parts[1]["ended_by"] == "budget" and abs(parts[1]["spent_gpu_hours"] - B2) <= BATCH_H
    assert m["scheduler"]["restored_from_checkpoint"] and m["scheduler"]["jobs_drawn_again_recorded"] == 0
    ids = _attempt_ids(out)
    assert len(ids) == len(set(ids)) and first["attempts"] < set(ids)  # nothing drawn twice, all of part 1 kept
    now = _digest(out)
    assert {k: now.get(k) for k in first["triplets"]} == first["triplets"]  # every triplet of part 1, byte for byte
    assert len(now) > len(first["triplets"]) == p1[0]["triplets"] and len(now) == parts[1]["triplets"]
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["table"][-1]["count"] == len(now)  # the funnel tells the whole run


def test_no_more_budget_is_nothing_to_do(extended, tmp_path):
    out, _ = extended
    before = sorted(p.name for p in (out / "data").iterdir())
    with pytest.raises(NothingToDo, match=r"budget of 0.3 GPU-hours .* nothing to do"):
        run(_cfg(B2), out)
    sets = [a for k, v in {**SETS, "output.progress": "false"}.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    r = subprocess.run([sys.executable, "-m", "nhr_ray", "run", "--out", str(out), "--budget-gpu-hours", str(B1), *sets],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "nothing to do" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in (out / "data").iterdir()) == before and (out / "manifest.json").exists()


def test_another_config_on_a_finished_run_is_refused(extended):
    from nhr_ray.runtime.pipeline import RunError

    out, _ = extended
    with pytest.raises(RunError, match="differs at edit.attempts_per_instruction"):
        run(small_config(**SETS, **{"scheduler.budget_gpu_hours": 1.0, "edit.attempts_per_instruction": 3}), out)


def test_a_crashed_run_resumed_with_a_larger_budget_continues(extended):
    """Killed after its final stages, before manifest.json (its last write): the same folder with a
    larger budget resumes and continues the queue."""
    out, first = extended
    before, ids_before = _digest(out), set(_attempt_ids(out))
    (out / "manifest.json").unlink()
    m = run(_cfg(0.45), out)["manifest"]
    assert m["resumed"] and m["parts"][-1]["resumed"] and [p["budget_gpu_hours"] for p in m["parts"]] == [B1, 0.45]
    ids = _attempt_ids(out)
    assert len(ids) == len(set(ids)) and ids_before < set(ids) and abs(m["parts"][-1]["spent_gpu_hours"] - 0.45) <= BATCH_H
    now = _digest(out)
    assert {k: now.get(k) for k in before} == before
