"""Wiring faults, measured (issue 17): small simulated runs, clean at several seeds (the seed-to-seed
spread is the noise) and once per injected fault (nhr_ray/testing/faults.py) at the first seed, on one
local Ray cluster. Prints one line per run, then JSON as its last line: each figure of
nhr_ray/testing/wiring.py per run, the clean runs' range and spread (min, max, max - min over seeds) and each fault's
change against the clean run at the same seed.

    python benchmarks/wiring_faults.py [--scenes 12] [--seeds 0 1 2 3] [--faults wrong_image ...]
                                       [--set prefilter.enabled=false ...]

tests/test_wiring_faults.py runs each fault at seed 0 and asserts its figure lands beyond the clean range.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private cluster of this process only

from ray.cluster_utils import Cluster  # noqa: E402

from nhr_ray.config import load_config  # noqa: E402
from nhr_ray.testing.faults import ENV, FAULTS  # noqa: E402
from nhr_ray.testing.wiring import faulted_run  # noqa: E402

SMALL = {"task.items_per_request": 6, "sources.seeds_per_prompt": 3, "scheduler.budget_gpu_hours": None,
         "output.progress": False, "output.shard_rows": 64}  # fmt: skip


def one(address: str, out: Path, seed: int, scenes: int, fault: str | None, sets: list[str]) -> dict:
    over = {**SMALL, "seed": seed, "task.num_scenes": scenes}
    cfg = load_config(overrides=[f"{k}={'null' if v is None else v}" for k, v in over.items()] + sets)
    return faulted_run(cfg, out, fault, address)


def flat(f: dict) -> dict[str, float]:
    """The figures as numbers (None: 0), nested ones dotted."""
    out = {}
    for k, v in f.items():
        if k in ("fault", "fault_notes", "seed", "wall_s"):
            continue
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv or 0 for kk, vv in v.items()})
        elif isinstance(v, (int, float)) or v is None:
            out[k] = v or 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--faults", nargs="*", default=list(FAULTS))
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    os.environ.pop(ENV, None)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 16, "num_gpus": 16, "include_dashboard": False})
    try:
        with tempfile.TemporaryDirectory() as d:
            todo = [(s, None) for s in args.seeds] + [(args.seeds[0], f) for f in args.faults]
            runs = []
            for k, (seed, fault) in enumerate(todo):
                runs.append(one(cluster.address, Path(d) / f"run{k}", seed, args.scenes, fault, args.sets))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        cluster.shutdown()
    clean = [flat(r) for r in runs if r["fault"] is None]
    spread = {k: round(max(c[k] for c in clean) - min(c[k] for c in clean), 4) for k in clean[0]}
    span = {k: [min(c[k] for c in clean), max(c[k] for c in clean)] for k in clean[0]}
    base = clean[0]
    changes = {r["fault"]: {k: round(v - base[k], 4) for k, v in flat(r).items() if k in spread and v != base[k]}
               for r in runs if r["fault"]}  # fmt: skip
    print(json.dumps({"scenes": args.scenes, "seeds": args.seeds, "sets": args.sets, "runs": runs,
                      "clean_range": span, "clean_spread": spread, "fault_change_vs_clean_seed": changes}))  # fmt: skip


if __name__ == "__main__":
    main()
