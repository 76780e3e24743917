"""Judging thresholds the paper leaves open, measured on the simulation world. Prints JSON as its
last line: for each variant, validator load (candidates it judged), its GPU-hours, the yield
(triplets by kind), the kept set's true precision by kind (the simulation's oracle: share of final
triplets a careful human would score above 4.0 on both axes, manifest `simulation_truth`) and the
funnel; ratios are against the baseline (the packaged defaults), run in the same invocation with the
same seed. A threshold trades yield for precision: read both.

    python benchmarks/prefilter_threshold.py [--seed 0] [--set key=value ...]

Variants:
- baseline: the packaged defaults (pre-filter adherence 3.5 / aesthetics 3.0, backward
  consistency 4.7 / 4.7; config/stages.py).
- prefilter_4.0: the pre-filter at 4.0 on both axes (the default before the judges were made as
  fallible as the paper's).
- prefilter_4.7: the pre-filter at the validator's 4.7 (the paper gives no number for its
  "coarse" pre-filter).
- consistency_4.5: backward consistency at 4.5 / 4.5 (this project's earlier default).

The simulated judges err as the paper's judges do against humans (Tables 1 and 7; fitted in
backends/sim/quality.py, measured by benchmarks/sim_judges.py); the figures are as good as that fit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from nhr_ray.config import load_config
from nhr_ray.runtime.pipeline import run

VARIANTS = {
    "baseline": [],
    "prefilter_4.0": ["prefilter.min_adherence=4.0", "prefilter.min_aesthetics=4.0"],
    "prefilter_4.7": ["prefilter.min_adherence=4.7", "prefilter.min_aesthetics=4.7"],
    "consistency_4.5": ["consistency.min_adherence=4.5", "consistency.min_aesthetics=4.5"],
}


def one(seed: int, sets: list[str]) -> dict:
    cfg = load_config(overrides=[f"seed={seed}", "output.progress=false", *sets])
    with tempfile.TemporaryDirectory() as d:
        res = run(cfg, Path(d) / "run")
    m, f = res["manifest"], res["funnel"]
    st = f["stages"]
    tri = m["triplets"]
    return {
        "validator_judged": st.get("validation", {}).get("in", 0),
        "validator_gpu_hours": round(m["gpu_hours"]["by_role_gpu_hours"].get("validator", 0.0), 4),
        "busy_gpu_hours": round(m["gpu_hours"]["busy_gpu_hours"], 3),
        "consistency": {k: st.get("consistency", {}).get(k) for k in ("in", "kept", "dropped")},
        "final": {k[6:]: v for k, v in tri.items() if k.startswith("final_")},
        "final_total": sum(v for k, v in tri.items() if k.startswith("final_")),
        # share of final triplets that are truly good, by kind and "all" (the simulation's oracle)
        "true_precision": m.get("simulation_truth", {}).get("true_precision"),
        "funnel": {r["stage"]: r["change_pct"] for r in f["table"]},
    }


def _points(r: dict, base: dict) -> float | None:
    """Difference in the kept set's overall true precision from the baseline's, in points."""
    a, b = (x.get("true_precision") or {} for x in (r, base))
    return None if a.get("all") is None or b.get("all") is None else round(100 * (a["all"] - b["all"]), 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--only", nargs="*", default=list(VARIANTS), help="variants to run (baseline always runs)")
    a = ap.parse_args()
    names = ["baseline"] + [n for n in a.only if n != "baseline"]
    res = {n: one(a.seed, [*a.sets, *VARIANTS[n]]) for n in names}
    base = res["baseline"]
    for n, r in res.items():
        r["vs_baseline"] = {
            "validator_judged": round(r["validator_judged"] / max(1, base["validator_judged"]), 3),
            "final_total": round(r["final_total"] / max(1, base["final_total"]), 3),
            "final_forward": round(r["final"].get("forward", 0) / max(1, base["final"].get("forward", 0)), 3),
            "true_precision_all_points": _points(r, base),
        }
    print(json.dumps({"seed": a.seed, "sets": a.sets, "variants": res}))


if __name__ == "__main__":
    main()
