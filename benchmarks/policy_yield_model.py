"""Which draw policy mines more triplets per GPU-hour? Prints JSON as its last line.

MODEL, NOT THE PIPELINE (benchmarks/policy_yield.py runs the pipeline): written before the Ray runtime
was on main, this drives the real JobScheduler (draws, policies, ledger, budget) against a small
numpy model of the judges, built on SPEC.md's per-pair law:
  - a pair's per-attempt probability of a clean edit q ~ Beta(0.105, 0.581), its mean scaled by
    the category's difficulty (SimConfig.category_difficulty), concentration kept;
  - pre-filter: passes a clean edit with 0.90, an unclean one with 0.35 (SPEC: 43 % pass overall);
    an unclean drop is 'unwanted_change' (vague/infeasible) with 0.8 on hopeless pairs (q < 0.01),
    0.4 otherwise, else 'low_scores'; its score ~ N(2.5 + 1.5 clean + 1.5 q, 0.5) in [1, 5];
  - hard validator (after the pre-filter): passes clean 0.92, unclean 0.08 (~15 % of attempts pass
    all filters and ~84 % of passes are clean: SPEC's 15.3 % and the paper's precision 0.834);
  - best-of: per pair the passing attempt with the highest validator score is the triplet;
  - costs (busy GPU-s, SPEC's table): edit 9.0, pre-filter 3.0 per attempt; budget on busy clock;
  - results come back asynchronously: up to `inflight` jobs outstanding, finishing in random order,
    so stopped pairs still return jobs that were already issued (counted as wasted).
Metrics per policy, same world, seeds, budget and thresholds:
  triplets_per_gpu_hour  kept (forward) triplets / busy GPU-hours spent
  precision              share of kept triplets whose chosen attempt is clean (ground truth)
  category_tv            total variation between the kept triplets' category mix and the
                         instructions' category mix (0: kept data mirrors the instruction mix)
  hard_share             share of kept triplets from hard pairs (q < 0.25: > 4 attempts expected)

    python benchmarks/policy_yield_model.py [--sources 1500] [--budget-fractions 0.25 1.0] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from nhr_ray.scheduler import JobScheduler

CATS = ["removal", "addition", "colour_change", "replacement", "style"]
DIFFICULTY = {"removal": 1.15, "addition": 1.0, "colour_change": 1.2, "replacement": 0.9, "style": 0.7}
A, B = 0.105, 0.581
EDIT_S, PRE_S = 9.0, 3.0

POLICIES = {
    "uniform": {},
    "per_category_m": {"attempts": {"removal": 4, "colour_change": 4, "addition": 5, "replacement": 6, "style": 7}},
    "until_first_success": {"stop_on": "prefilter"},
    "until_first_success_validator": {"stop_on": "validator"},
    "weakness": {"success_on": "validator", "explore_floor": 0.2},
    "adaptive": {"stop_on": "prefilter", "strikes": 2, "low_score": 2.5, "low_streak": 2},
    "adaptive_validator": {"stop_on": "validator", "strikes": 2, "low_score": 2.5, "low_streak": 2},
}


def world(rng, sources: int, k: int):
    cats = rng.integers(0, len(CATS), (sources, k))
    mean = A / (A + B) * np.array([DIFFICULTY[c] for c in CATS])[cats]
    conc = A + B
    q = rng.beta(mean * conc, (1 - mean) * conc)
    return cats, q


def run(policy: str, options: dict, seed: int, sources: int, k: int, m: int, budget_jobs: int, inflight: int):
    rng = np.random.default_rng([seed, 1])
    cats, q = world(np.random.default_rng([seed, 0]), sources, k)
    name = policy.removesuffix("_validator")
    s = JobScheduler(seed, m, unit="job", budget_gpu_hours=budget_jobs * (EDIT_S + PRE_S) / 3600,
                     prior_job_cost=EDIT_S + PRE_S, policy=name, policy_options=options)  # fmt: skip
    ids = [f"S{i:06d}.n00" for i in range(sources)]
    s.add_sources(ids, [[CATS[c] for c in row] for row in cats])
    best: dict[int, tuple[float, bool]] = {}  # pair -> (validator score, clean)
    out: list = []
    while True:
        if len(out) <= inflight - 8 or not out:
            out += s.draw(8)
        if not out:
            break
        j = out.pop(int(rng.integers(len(out))))
        src, i = int(j.source_id[1:7]), j.instruction_index
        p, cat = q[src, i], CATS[cats[src, i]]
        clean = rng.random() < p
        pre = rng.random() < (0.90 if clean else 0.35)
        reason = "ok"
        if not pre:
            reason = "unwanted_change" if rng.random() < (0.8 if p < 0.01 else 0.4) else "low_scores"
        score = float(np.clip(rng.normal(2.5 + 1.5 * clean + 1.5 * p, 0.5), 1, 5))
        val = pre and rng.random() < (0.92 if clean else 0.08)
        costs = {"edit": ("editor", EDIT_S), "prefilter": ("prefilter", PRE_S)}
        s.complete(j.attempt_id, costs, {"category": cat, "prefilter_pass": pre, "validator_pass": val,
                                         "reason": reason, "score": score})  # fmt: skip
        if val:
            vs = 4.7 + 0.3 * rng.random() + 0.1 * clean
            key = src * k + i
            if key not in best or vs > best[key][0]:
                best[key] = (vs, bool(clean))
    st = s.stats()
    kept = np.array(sorted(best), np.int64)
    cleans = np.array([best[x][1] for x in kept.tolist()], bool)
    kc = cats.ravel()[kept]
    mix_kept = np.bincount(kc, minlength=len(CATS)) / max(len(kept), 1)
    mix_all = np.bincount(cats.ravel(), minlength=len(CATS)) / cats.size
    hours = st["ledger"]["busy_gpu_hours"]
    return {
        "triplets": len(kept),
        "gpu_hours": hours,
        "triplets_per_gpu_hour": len(kept) / hours,
        "precision": float(cleans.mean()) if len(kept) else 0.0,
        "category_tv": 0.5 * float(np.abs(mix_kept - mix_all).sum()),
        "hard_share": float((q.ravel()[kept] < 0.25).mean()) if len(kept) else 0.0,
        "attempts": st["jobs_completed"] + st["unknown_completions"],
        "wasted_jobs": st["jobs_wasted"],
        "cancelled_jobs": st["jobs_cancelled"],
        "pairs_stopped": st["pairs_stopped"],
        "kept_mix": dict(zip(CATS, np.round(mix_kept, 3).tolist())),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=1500)
    ap.add_argument("--instructions", type=int, default=4)
    ap.add_argument("--attempts", type=int, default=5)
    ap.add_argument("--budget-fractions", type=float, nargs="+", default=[0.25, 1.0],
                    help="budgets as shares of the whole queue's attempts (12 GPU-s each); the first is 'policies'")
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    total_jobs = args.sources * args.instructions * args.attempts
    out = {
        "model": "numpy judge model on SPEC's Beta(0.105, 0.581) per-pair law, driving the real JobScheduler "
        "(unit=job); not the Ray pipeline",
        "sources": args.sources, "pairs": args.sources * args.instructions, "jobs": total_jobs, "seeds": args.seeds,
    }  # fmt: skip
    for n, frac in enumerate(args.budget_fractions):
        budget_jobs = int(round(frac * total_jobs))
        res = compare(args, budget_jobs)
        out["policies" if n == 0 else f"policies_budget_{frac:g}"] = res
        out["budget_jobs" if n == 0 else f"budget_jobs_{frac:g}"] = budget_jobs
    print(json.dumps(out))


def compare(args, budget_jobs: int) -> dict:
    res = {}
    for pol, opts in POLICIES.items():
        runs = [run(pol, opts, sd, args.sources, args.instructions, args.attempts, budget_jobs, args.inflight)
                for sd in range(args.seeds)]  # fmt: skip
        agg = {}
        for key in ("triplets", "gpu_hours", "triplets_per_gpu_hour", "precision", "category_tv", "hard_share",
                    "attempts", "wasted_jobs", "cancelled_jobs"):  # fmt: skip
            vals = np.array([r[key] for r in runs], float)
            agg[key] = round(float(vals.mean()), 4)
            if key == "triplets_per_gpu_hour":
                agg["triplets_per_gpu_hour_sd"] = round(float(vals.std(ddof=1)), 3) if len(vals) > 1 else 0.0
        agg["pairs_stopped"] = runs[0]["pairs_stopped"]
        agg["kept_mix"] = runs[0]["kept_mix"]
        agg["options"] = opts
        res[pol] = agg
    return res


if __name__ == "__main__":
    main()
