"""Draw policies compared on the real pipeline (Ray runtime, simulation world); JSON as last line.

Every policy mines the same world (same seed, scenes, sources) under the same busy-GPU-hour
budget, with `scheduler.unit=job` (policies that stop pairs need it) plus the default preset's
`uniform` with `unit=pair` as the reference. Read back from each run's output:
  triplets_per_gpu_hour   kept forward triplets (best-of per pair) / busy GPU-hours spent
  final_per_gpu_hour      all final triplets (forward + inverse + composed) / busy GPU-hours
  precision               share of kept forward triplets that are truly good (a careful human
                          would score both axes > 4.0): the simulation's
                          oracle (backends/sim/oracle.py) reads the final images and instruction
  category_tv             total variation between the kept forward triplets' category mix and the
                          `uniform` policy's kept mix in the same run (the issue's definition)
  category_tv_vs_queue    the same against the mix of all (image, instruction) pairs in the queue
  hard_share              share of kept forward triplets from hard pairs: the world's per-attempt clean
                          probability q < 0.25 (oracle.pair_q), i.e. more than 4 attempts expected
  queue_share_issued      jobs issued / jobs in the queue (every surviving source x instruction x M):
                          how much of the queue the budget reached
plus the scheduler's wasted / cancelled jobs and stopped pairs (means per run). Figures averaged over
seeds are means per run. `--adaptive-variants` adds adaptive policies with other options to the same
invocation (a threshold sweep).

    python benchmarks/policy_yield.py [--scenes 30] [--budget 2.0] [--seeds 0 1]
        [--policies NAME ...] [--adaptive JSON] [--adaptive-variants '{"name": {options}}']
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from nhr_ray.backends.sim import oracle
from nhr_ray.config import CATEGORIES, load_config
from nhr_ray.runtime.cluster import start_local
from nhr_ray.runtime.pipeline import run

POLICIES = {
    "uniform_pair": ("uniform", "pair", {}),
    "uniform": ("uniform", "job", {}),
    "per_category_m": ("per_category_m", "job", {"attempts": {"removal": 4, "colour_change": 4, "addition": 5,
                                                               "replacement": 6, "style": 7}}),  # fmt: skip
    "until_first_success": ("until_first_success", "job", {"stop_on": "validator"}),
    "weakness": ("weakness", "job", {"success_on": "validator", "explore_floor": 0.2}),
    # give up on a pair after one pre-filter adherence below 3.0 (or two unwanted-change verdicts). From a
    # sweep on seed 0, --scenes 30 --budget 1.6 (a quarter of the queue): with judges as fallible as the
    # paper's a failed edit's adherence rarely falls below the old 1.7 (one pair of 30 scenes gave up on
    # it); 3.0 gives up on pairs (22) at a yield and precision no worse than the others'. No setting
    # (low_score 1.7-3.5 or the 0.25 quantile, low_streak 1-2, strikes 1-3) stood out beyond run-to-run
    # noise (about +-8 of ~64 kept triplets at this size)
    "adaptive": ("adaptive", "job", {"stop_on": "validator", "strikes": 2, "score_field": "adherence",
                                     "low_score": 3.0, "low_streak": 1}),
    # the setting tuned on the old world (a failed edit's adherence tracked its pair's difficulty there)
    "adaptive_1.7": ("adaptive", "job", {"stop_on": "validator", "strikes": 2, "score_field": "adherence",
                                         "low_score": 1.7, "low_streak": 1}),
}


def table(out: Path, kind: str, columns: list[str]) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob(f"{kind}-*.parquet")):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def measure(out: Path, manifest: dict, cfg) -> dict:
    trip = table(out, "triplets", ["kind", "attempt_id", "category", "source_image", "edited_image", "edit_instruction"])
    fwd = [t for t in trip if t["kind"] == "forward"]
    src = table(out, "sources", ["categories", "gate_keep"])
    queue_mix = collections.Counter(c for s in src if s["gate_keep"] for c in s["categories"])
    kept_mix = collections.Counter(t["category"] for t in fwd)
    tv = 0.5 * sum(abs(kept_mix[c] / max(len(fwd), 1) - queue_mix[c] / max(sum(queue_mix.values()), 1))
                   for c in CATEGORIES)  # fmt: skip
    clean = [oracle.truly_good(t["source_image"]["bytes"], t["edited_image"]["bytes"], t["edit_instruction"]) for t in fwd]
    q = [oracle.pair_q(cfg.seed, cfg.sim, t["attempt_id"].rpartition(".m")[0], t["category"]) for t in fwd]
    sched = manifest["scheduler"]
    hours = sched["ledger"]["busy_gpu_hours"]
    return {
        "triplets": len(fwd),
        "final_triplets": len(trip),
        "gpu_hours": round(hours, 4),
        "triplets_per_gpu_hour": round(len(fwd) / hours, 3),
        "final_per_gpu_hour": round(len(trip) / hours, 3),
        "precision": round(float(np.mean(clean)), 4) if fwd else None,
        "category_tv_vs_queue": round(tv, 4),
        "category_mix": {c: kept_mix[c] for c in CATEGORIES},
        "hard_share": round(float(np.mean(np.array(q) < 0.25)), 4) if fwd else None,
        "attempts": sched["jobs_completed"],
        "jobs_total": sched["jobs_total"],
        # share of the queue (every surviving source x instruction x M) the run issued: the budget's reach
        "queue_share_issued": round(sched["jobs_issued"] / max(sched["jobs_total"], 1), 4),
        "wasted_jobs": sched["jobs_wasted"],
        "cancelled_jobs": sched["jobs_cancelled"],
        "pairs_stopped": sched["pairs_stopped"],
        "reserved_gpu_hours": round(sched["ledger"]["reserved_gpu_hours"], 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--budget", type=float, default=2.0, help="busy GPU-hours per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--adaptive", default="{}", help="JSON options merged into the adaptive policy's")
    ap.add_argument("--adaptive-variants", default="{}",
                    help='JSON {"name": {options}}: extra adaptive policies (options merged into the adaptive '
                         "policy's), run after --policies in the same cluster: a threshold sweep in one invocation")
    args = ap.parse_args()
    POLICIES["adaptive"][2].update(json.loads(args.adaptive))
    for name, opts in json.loads(args.adaptive_variants).items():
        POLICIES[name] = ("adaptive", "job", {**POLICIES["adaptive"][2], **opts})
        args.policies.append(name)
    start_local(num_cpus=4, num_gpus=8, include_dashboard=False, log_to_driver=False)  # token authentication on
    per: dict[str, list[dict]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            for name in args.policies:
                policy, unit, opts = POLICIES[name]
                cfg = load_config(overrides=[
                    f"seed={seed}", f"task.num_scenes={args.scenes}", f"scheduler.budget_gpu_hours={args.budget}",
                    f"scheduler.unit={unit}", f"scheduler.policy={policy}", "output.progress=false",
                    f"scheduler.policy_options={json.dumps(opts)}",
                ])  # fmt: skip
                out = Path(d) / f"{name}-{seed}"
                run(cfg, out)
                r = measure(out, json.loads((out / "manifest.json").read_text()), cfg)
                per[name].append(r)
                print(json.dumps({name: r, "seed": seed}), file=sys.stderr, flush=True)
    res = {}
    for name, runs in per.items():
        agg = {k: round(float(np.mean([r[k] for r in runs if r[k] is not None])), 4)
               for k in runs[0] if isinstance(runs[0][k], (int, float))}  # fmt: skip
        agg["pairs_stopped"] = {k: round(float(np.mean([r["pairs_stopped"].get(k, 0) for r in runs])), 1)
                                for k in runs[0]["pairs_stopped"]}  # per run, as every other figure
        agg["runs"] = len(runs)
        agg["category_mix"] = {c: sum(r["category_mix"][c] for r in runs) for c in CATEGORIES}
        res[name] = agg
    ref = res.get("uniform")
    for name, agg in res.items():
        if ref is not None:
            a, b = agg["category_mix"], ref["category_mix"]
            na, nb = max(sum(a.values()), 1), max(sum(b.values()), 1)
            agg["category_tv"] = round(0.5 * sum(abs(a[c] / na - b[c] / nb) for c in CATEGORIES), 4)
        if ref is not None and name != "uniform":
            agg["vs_uniform"] = {
                "triplets_per_gpu_hour": round(agg["triplets_per_gpu_hour"] / ref["triplets_per_gpu_hour"], 3),
                "precision_points": round(100 * (agg["precision"] - ref["precision"]), 2),
                "hard_share": round(agg["hard_share"] / ref["hard_share"], 3) if ref["hard_share"] else None,
            }
    print(json.dumps({"world": "simulation (default preset)", "scenes": args.scenes, "budget_gpu_hours": args.budget,
                      "budget_clock": "busy", "seeds": args.seeds, "policies": res}))  # fmt: skip


if __name__ == "__main__":
    main()
