"""Kill anywhere: the CLI (`python -m nhr_ray run ...`, a real process joined to this module's Ray
cluster) is SIGKILLed at moments chosen from what the run has written (design answers, the first
sources and attempts shards, most of the attempts, the scheduler's checkpoint, finalize's staging
marker and recorded answers), several times in a row on one run, and resumed with the same command
each time. Under a budget the queue cannot exhaust, the run must end with exactly the uninterrupted
run's sample_ids and image bytes, every job done once, and no temporaries left."""

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray

from conftest import small_config
from nhr_ray.runtime.pipeline import run

SETS = {"task.num_scenes": 8, "task.items_per_request": 4, "sources.seeds_per_prompt": 2, "output.shard_rows": 8,
        "roles.editor.actors": 1, "scheduler.budget_gpu_hours": 1_000_000}  # fmt: skip


def _files(out: Path, pattern: str) -> list[str]:
    return glob.glob(str(out / pattern))


def _attempt_shards(out: Path) -> int:
    return len(_files(out, "data/attempts-*.parquet"))


# the moments, as predicates on what the run has written (tail: 85 % of the reference's attempts)
MOMENTS = {
    "design": lambda out, ref: bool(_files(out, "state/design-*.json")),
    "sources": lambda out, ref: bool(_files(out, "data/sources-*.parquet")),
    "first_edits": lambda out, ref: _attempt_shards(out) >= 1,
    "tail": lambda out, ref: _attempt_shards(out) >= 0.85 * ref["attempts"] / SETS["output.shard_rows"],
    "checkpoint": lambda out, ref: (out / "state" / "scheduler.npz").exists(),
    "finalize": lambda out, ref: (out / "state" / "finalize" / "STARTED.json").exists(),
    "finalize_answers": lambda out, ref: bool(_files(out, "state/answers-*.parquet")),
}
# (moment, scheduler.checkpoint_every_s of the invocation that is killed there); one chain per unit.
# 3600 s keeps the scheduler from checkpointing, so the resume after the tail kill rebuilds the queue
# from the record (the crash: most of its first draws are recorded jobs); 0.3 s makes it
# checkpoint at its first call, so every later resume restores the checkpoint. The job chain repeats
# the scheduler's moments only: design and sources do not depend on the unit. (The switch of the
# triplet shards at the end of finalize is too short to hit from outside: test_finalize_state.py
# kills it at every step.)
CHAINS = {
    "pair": [("design", 3600), ("sources", 3600), ("first_edits", 3600), ("tail", 3600), ("checkpoint", 0.3),
             ("finalize", 0.3), ("finalize_answers", 0.3)],
    "job": [("tail", 3600), ("checkpoint", 0.3)],
}  # fmt: skip


def _digest(out: Path) -> dict[str, tuple]:
    cols = ["sample_id", "kind", "edit_instruction", "source_image", "edited_image"]
    rows = pq.read_table(sorted(_files(out, "data/triplets-*.parquet")), columns=cols).to_pylist()
    h = lambda img: hashlib.sha256(img["bytes"]).hexdigest()  # noqa: E731
    out_ = {r["sample_id"]: (r["kind"], r["edit_instruction"], h(r["source_image"]), h(r["edited_image"])) for r in rows}
    assert len(out_) == len(rows), "a sample_id twice"
    return out_


def _attempt_ids(out: Path) -> list[str]:
    return pq.read_table(sorted(_files(out, "data/attempts-*.parquet")), columns=["attempt_id"]).column("attempt_id").to_pylist()


@pytest.fixture(scope="module")
def references(ray_local, tmp_path_factory):
    """The uninterrupted run per unit (in this process, on the shared cluster)."""
    refs = {}
    for unit in CHAINS:
        out = tmp_path_factory.mktemp(f"ref-{unit}")
        run(small_config(**SETS, **{"scheduler.unit": unit}), out)
        refs[unit] = {"triplets": _digest(out), "attempts": len(_attempt_ids(out)), "attempt_ids": set(_attempt_ids(out))}
    return refs


def _cmd(out: Path, unit: str, checkpoint_every_s: float) -> list[str]:
    sets = {**SETS, "scheduler.unit": unit, "output.progress": "false", "scheduler.checkpoint_every_s": checkpoint_every_s}
    return [sys.executable, "-m", "nhr_ray", "run", "--out", str(out), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]


def _run_until(cmd: list[str], out: Path, ready, timeout: float = 300) -> bool:
    """Start the command; SIGKILL it as soon as ready(out) holds. False when it finished first."""
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while p.poll() is None and time.monotonic() < deadline:
            if ready(out):
                p.send_signal(signal.SIGKILL)
                p.wait()
                return True
            time.sleep(0.02)
        assert p.poll() is not None, "the run did not finish in time"
        assert p.returncode == 0, p.stderr.read().decode()[-3000:]
        return False
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("unit", list(CHAINS))
def test_killed_at_every_moment_then_resumed_gives_the_uninterrupted_run(references, tmp_path, unit):
    ref, out = references[unit], tmp_path / "run"
    landed = []
    for moment, every in CHAINS[unit]:
        killed = _run_until(_cmd(out, unit, every), out, lambda o, m=moment: MOMENTS[m](o, ref))
        assert killed, f"the run finished before the {moment!r} moment"
        assert not (out / "manifest.json").exists()
        landed.append((moment, _attempt_shards(out), (out / "state" / "scheduler.npz").exists()))
    assert not _run_until(_cmd(out, unit, 0.3), out, lambda o: False)  # the last resume runs to the end
    print(f"{unit}: killed at {landed}")

    assert _digest(out) == ref["triplets"]
    ids = _attempt_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == ref["attempt_ids"]  # every job once
    m = json.loads((out / "manifest.json").read_text())
    assert m["resumed"] and m["scheduler"]["jobs_drawn_again_recorded"] == 0
    assert m["scheduler"]["jobs_completed"] == m["scheduler"]["jobs_total"] == len(ids)
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not list((out / "state" / "finalize").iterdir())
