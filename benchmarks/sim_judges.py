"""How fallible the simulated judges are, measured as the paper measured real ones (Tables 1 and 7),
with the project's own `nhr-ray calibrate`. Prints JSON as its last line:

    {"validator": {"adherence_mae", "adherence_spearman", "aesthetics_mae", "aesthetics_spearman",
                   "precision", "recall"}, "prefilter": {...}, "paper": {"validator": {...}, "prefilter": {...}},
     "sample": {...}}

    python benchmarks/sim_judges.py [--scenes 400] [--seed 0] [--fit]

The candidates are real ones: the simulation's design, T2I, gate and editor stages run in-process
(the default config), and every edit that passes the low-level check is a candidate. Simulated human
raters (two, each with a bias and a little noise) rate each candidate's true quality
(backends/sim/oracle.py: what a careful human would say of those images and that instruction); a
sample is drawn with the paper's rated set's share of positives (0.425: both human scores > 4.0;
Table 7's precision, recall and accuracy imply it for either judge). Each simulated judge is asked
with its real prompt through its profile, its answer parsed as the pipeline parses it, and
`calibrate` (de-biasing included) gives MAE, Spearman and precision/recall at 4.7 on both axes.

--fit refits the judges' offsets, slopes and sigmas (nhr_ray/backends/sim/quality.py) to the paper's
rows on this sample, by coordinate search on the vectorised model, and prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nhr_ray.backends.sim import quality as Q
from nhr_ray.backends.sim.perceive import perceive
from nhr_ray.config import load_config
from nhr_ray.judges.profiles import role_profile
from nhr_ray.products.calibrate import calibrate, spearman
from nhr_ray.records import Job
from nhr_ray.stages import table

PAPER = {
    "validator": {"adherence_mae": 0.503, "adherence_spearman": 0.815, "aesthetics_mae": 0.568,
                  "aesthetics_spearman": 0.631, "precision": 0.834, "recall": 0.446},
    "prefilter": {"adherence_mae": 0.961, "adherence_spearman": 0.551, "aesthetics_mae": 0.839,
                  "aesthetics_spearman": 0.361, "precision": 0.571, "recall": 0.483},
}  # fmt: skip
POSITIVE_SHARE = 0.425


def candidates(scenes: int, seed: int) -> list[dict]:
    """Every edit of a default-config run over `scenes` scenes (all pairs, M attempts) that passes the
    low-level check: {id, source, edited, instruction, category}."""
    cfg = load_config(overrides=[f"seed={seed}", f"task.num_scenes={scenes}", "sim.malformed_rate=0"])
    stage = {n: table.spec(n).load(cfg)(cfg) for n in ("design", "sources", "gate", "edit", "lowlevel")}
    for s in stage.values():
        s.setup()
    scene_rows = stage["design"].process(list(range(-(-scenes // cfg.task.items_per_request)))).rows[:scenes]
    srcs = stage["gate"].process(stage["sources"].process([(s, 0) for s in scene_rows]).rows).rows
    srcs = {s.source_id: s for s in srcs if s.gate is None or s.gate.keep}
    jobs = [Job(f"{sid}.i{k}.m{m}", f"{sid}.i{k}", sid, k, m, 7 + m) for sid, s in srcs.items()
            for k in range(len(s.instructions)) for m in range(cfg.edit.attempts_per_instruction)]  # fmt: skip
    out = []
    for i in range(0, len(jobs), 64):
        rows = stage["lowlevel"].process(stage["edit"].process(jobs[i : i + 64], srcs).rows, srcs).rows
        for a in rows:
            if a.alive:
                src = srcs[a.job.source_id]
                out.append({"id": a.job.attempt_id, "source": src.image, "edited": a.edited,
                            "instruction": a.instruction.text, "category": a.instruction.category})  # fmt: skip
    return out


def truth_of(c: dict) -> dict:
    p = perceive(c["source"], c["edited"], c["instruction"])
    lat = Q.latents(c["source"], c["edited"], c["instruction"])
    adh, aes = Q.true_quality(p.done, p.outside, p.specks, p.feasible, *lat.finish, lat.picture)
    return {"adh": float(adh), "aes": float(aes), "lat": lat}


def stratified(cands: list[dict], truths: list[dict], rng: np.random.Generator) -> list[int]:
    pos = [i for i, t in enumerate(truths) if t["adh"] > Q.HUMAN_POSITIVE and t["aes"] > Q.HUMAN_POSITIVE]
    neg = [i for i, t in enumerate(truths) if i not in set(pos)]
    n_pos = min(len(pos), int(len(neg) * POSITIVE_SHARE / (1 - POSITIVE_SHARE)))
    n_neg = min(len(neg), int(round(n_pos * (1 - POSITIVE_SHARE) / POSITIVE_SHARE)))
    return sorted(rng.choice(pos, n_pos, replace=False).tolist() + rng.choice(neg, n_neg, replace=False).tolist())


def ratings_table(ids: list[str], truths: list[dict], rng: np.random.Generator) -> pa.Table:
    rows = []
    for rater, bias in (("h1", 0.15), ("h2", -0.1)):
        for i, t in zip(ids, truths):
            noise = rng.normal(0, 0.1, 2)
            rows.append({"triplet": i, "rater": rater, "category": None,
                         "adherence": float(np.clip(t["adh"] + bias + noise[0], 1, 5)),
                         "aesthetics": float(np.clip(t["aes"] + bias + noise[1], 1, 5))})  # fmt: skip
    return pa.Table.from_pylist(rows)


def judge_predictions(role: str, cands: list[dict], seed: int) -> pa.Table:
    """The simulated judge asked with its real prompt through its profile, parsed as the pipeline does."""
    from nhr_ray.roles import BackendContext, build_backend

    cfg = load_config(overrides=[f"seed={seed}", "sim.malformed_rate=0"])
    profile = role_profile(cfg, role)
    judge = build_backend(role, "sim", {}, BackendContext(role, seed, 1.0, cfg.sim, run_config=cfg))
    rows = []
    for c in cands:
        reqs = profile.requests(c["id"], c["instruction"], c["source"], c["edited"])
        parsed = profile.parse([a.text for a in judge.ask(reqs)])
        rows.append({"triplet": c["id"], **(parsed.value if parsed.ok else {"adherence": None, "aesthetics": None})})
    return pa.Table.from_pylist(rows)


def measure(role: str, sample: list[dict], truths: list[dict], seed: int, tmp: Path) -> dict:
    rng = np.random.default_rng(seed + 1)
    pq.write_table(ratings_table([c["id"] for c in sample], truths, rng), tmp / "ratings.parquet")
    pq.write_table(judge_predictions(role, sample, seed), tmp / f"{role}.parquet")
    rep = calibrate(tmp / "ratings.parquet", tmp / f"{role}.parquet", threshold=4.7)
    ax, cl = rep["axes"], rep["classifier"]
    return {"adherence_mae": round(ax["adherence"]["mae"], 3), "adherence_spearman": round(ax["adherence"]["spearman"], 3),
            "aesthetics_mae": round(ax["aesthetics"]["mae"], 3), "aesthetics_spearman": round(ax["aesthetics"]["spearman"], 3),
            "precision": round(cl["precision"], 3), "recall": round(cl["recall"], 3)}  # fmt: skip


def model_figures(j: Q.ScoreJudge, adh, aes, shared, own, noise, lapse_u) -> dict:
    """The same figures from the vectorised model (for --fit), against the truth itself."""
    s_adh, s_aes = Q.scores(adh, aes, j, Q.judge_errors(shared, own, 0.5, j.halo), noise, lapse_u)

    pos, pred = (adh > 4) & (aes > 4), (s_adh >= 4.7) & (s_aes >= 4.7)
    return {"adherence_mae": float(np.abs(s_adh - adh).mean()), "adherence_spearman": spearman(s_adh, adh),
            "aesthetics_mae": float(np.abs(s_aes - aes).mean()), "aesthetics_spearman": spearman(s_aes, aes),
            "precision": float((pos & pred).sum() / max(pred.sum(), 1)), "recall": float((pos & pred).sum() / max(pos.sum(), 1))}  # fmt: skip


def fit(role: str, truths: list[dict]) -> Q.ScoreJudge:
    adh, aes = np.array([t["adh"] for t in truths]), np.array([t["aes"] for t in truths])
    draws = [Q.error_draws(t["lat"], role) for t in truths]
    shared, own = np.stack([d[0] for d in draws]), np.stack([d[1] for d in draws])
    noise = np.random.default_rng(5).standard_normal((len(truths), 2))
    lapse_u = np.array([Q.uniform(t["lat"].key, f"lapse/{role}") for t in truths])
    target = PAPER[role]

    def loss(j):
        f = model_figures(j, adh, aes, shared, own, noise, lapse_u)
        return sum(((f[k] - target[k]) / 0.02) ** 2 for k in target)

    j = Q.JUDGES[role]
    params = [("offset", 0), ("offset", 1), ("slope", 0), ("slope", 1), ("sigma", 0), ("sigma", 1), ("halo", None), ("lapse", None), ("hetero", None)]
    step = 0.1
    best = loss(j)
    while step > 0.004:
        improved = False
        for name, k in params:
            for d in (step, -step):
                v = getattr(j, name)
                cand = replace(j, **{name: (v + d if k is None else tuple(x + d if i == k else x for i, x in enumerate(v)))})
                if cand.halo < 0 or cand.halo > 0.95 or not 0 <= cand.lapse <= 0.4 or not 0 <= cand.hetero <= 0.9 or min(cand.sigma) <= 0 or min(cand.slope) <= 0:
                    continue
                lo = loss(cand)
                if lo < best:
                    j, best, improved = cand, lo, True
        if not improved:
            step /= 2
    print(json.dumps({"role": role, "fitted": {k: getattr(j, k) for k in ("offset", "slope", "sigma", "halo", "lapse", "hetero")},
                      "model": {k: round(v, 3) for k, v in model_figures(j, adh, aes, shared, own, noise, lapse_u).items()}}),
          file=sys.stderr)  # fmt: skip
    return j


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    cands = candidates(args.scenes, args.seed)
    truths = [truth_of(c) for c in cands]
    idx = stratified(cands, truths, np.random.default_rng(args.seed))
    sample, st = [cands[i] for i in idx], [truths[i] for i in idx]
    if args.fit:
        for role in ("validator", "prefilter"):
            fit(role, st)
        return
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        for role in ("validator", "prefilter"):
            out[role] = measure(role, sample, st, args.seed, Path(d))
    out["paper"] = PAPER
    pos = sum(t["adh"] > 4 and t["aes"] > 4 for t in truths)
    out["sample"] = {"candidates": len(cands), "positive_share_all": round(pos / len(cands), 3),
                     "rated": len(sample), "positive_share_rated": POSITIVE_SHARE, "simulated": True}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
