"""The refactor's reference (issue 16): a fixed run gives the same sample_ids, the same images and the
same attempt outcomes as the code it was recorded on (tests/data/reference_run.json).

Images are compared by a sha256 of their decoded pixels (with shape), not of their PNG bytes, so the
fingerprint does not depend on the encoder's version. Re-record (only when a change is meant to alter
the run's output, and say so in the commit) with:
    python tests/test_reference_run.py record
"""

import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

REF = Path(__file__).parent / "data" / "reference_run.json"
# a budget the queue cannot exhaust (none): the run ends when every job is done, whatever the timing
SETS = {"seed": 3, "task.num_scenes": 12, "task.items_per_request": 6, "sources.seeds_per_prompt": 2,
        "scheduler.budget_gpu_hours": None, "output.progress": False, "output.shard_rows": 64}  # fmt: skip


def _pixels(cell) -> str:
    from nhr_ray.io.images import decode

    img = decode(cell["bytes"], 1 << 26)
    return hashlib.sha256(repr(img.shape).encode() + img.tobytes()).hexdigest()[:16]


def fingerprint(out: Path) -> dict:
    trip = pq.read_table(sorted((out / "data").glob("triplets-*.parquet"))).to_pylist()
    att = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")),
                        columns=["attempt_id", "final_stage", "final_outcome", "final_reason"]).to_pylist()
    return {
        "triplets": {r["sample_id"]: [r["kind"], _pixels(r["source_image"]), _pixels(r["edited_image"])]
                     for r in sorted(trip, key=lambda r: r["sample_id"])},
        "attempts": {r["attempt_id"]: [r["final_stage"], r["final_outcome"], r["final_reason"]]
                     for r in sorted(att, key=lambda r: r["attempt_id"])},
        "table": {r["stage"]: r["count"] for r in json.loads((out / "funnel.json").read_text())["table"]},
    }


def mine(out: Path) -> dict:
    from nhr_ray.config import load_config
    from nhr_ray.runtime.pipeline import run

    cfg = load_config(overrides=[f"{k}={'null' if v is None else v}" for k, v in SETS.items()])
    run(cfg, out)
    return fingerprint(out)


def test_reference_run_is_unchanged(ray_local, tmp_path):
    got = mine(tmp_path / "run")
    want = json.loads(REF.read_text())
    assert sorted(got["triplets"]) == sorted(want["triplets"])  # the same sample_ids
    assert got["triplets"] == want["triplets"]  # ... with the same images
    assert got["attempts"] == want["attempts"]
    assert got["table"] == want["table"]


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    import os
    import tempfile

    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=16, num_gpus=16, include_dashboard=False, logging_level="ERROR")
    fp = mine(Path(tempfile.mkdtemp()) / "run")
    REF.write_text(json.dumps(fp, indent=0, sort_keys=True) + "\n")
    print(len(fp["triplets"]), "triplets,", len(fp["attempts"]), "attempts recorded")
