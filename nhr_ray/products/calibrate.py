"""Validator calibration against human ratings (SPEC.md "Validator calibration", paper 3.3 / app. B).

Ratings: rows (triplet, rater, adherence, aesthetics[, category]); every triplet rated by a few
raters on both 1-5 axes. Each axis is de-biased on its own:

    m_t  = mean of the raw scores triplet t received
    b_j  = mean of rater j's scores  -  mean over the triplets j rated of m_t
    h_t  = mean over t's raters j of (s_tj - b_j)

All valid ratings feed the bias estimates; the validator is then judged on the triplets it has a
prediction for (pass the held-out split's predictions to judge a tuned validator fairly): MAE and
Spearman rho per axis, rho per category, and the classifier view "validator >= T on both axes"
against "both de-biased human scores > 4.0", at one threshold and swept over thresholds.

Reading the files (column spellings, `--run` checks, predictions from the run) is in ratings.py.
Bad input is either an error (a missing or ambiguous column, a triplet predicted twice, ratings of
another run) or a counted exclusion (a non-numeric or out-of-range score, a repeated rating, an id
the run does not hold, a prediction for a triplet nobody rated, a rated triplet with no
prediction); the counts are in the report's `excluded`, their meanings in ratings.DROPPED. Where
de-biasing cannot work as the protocol assumes (one rater, raters sharing no triplet, triplets
with one rater) the report's `debias` says so and what was done instead.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nhr_ray.products.provenance import run_judge
from nhr_ray.products.ratings import AXES, check_against_run, read_predictions, read_ratings, run_predictions
from nhr_ray.products.tables import InputError

HUMAN_POSITIVE = 4.0  # the paper's positive class: both de-biased human scores above this


def rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties share their average rank (what Spearman's rho needs)."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=float)
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        same = x == v
        if same.sum() > 1:
            r[same] = r[same].mean()
    return r


def spearman(a, b) -> float | None:
    """Spearman's rho; None when it is undefined (fewer than 3 items or a constant side)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return None
    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _raters_of(ratings: list[tuple[str, str, float]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for t, r, _ in ratings:
        out[t].add(r)
    return out


def debias(ratings: list[tuple[str, str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """[(triplet, rater, score)] of one axis -> (de-biased score per triplet, bias per rater)."""
    by_t: dict[str, list[float]] = defaultdict(list)
    by_r: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for t, r, s in ratings:
        by_t[t].append(s)
        by_r[r].append((t, s))
    m = {t: float(np.mean(v)) for t, v in by_t.items()}
    bias = {r: float(np.mean([s for _, s in v]) - np.mean([m[t] for t in {t for t, _ in v}])) for r, v in by_r.items()}
    raters_of = _raters_of(ratings)
    for r, v in by_r.items():
        if all(len(raters_of[t]) == 1 for t, _ in v):
            bias[r] = 0.0  # nobody to compare with: exactly 0 (the formula gives 0 up to rounding)
    acc: dict[str, list[float]] = defaultdict(list)
    for t, r, s in ratings:
        acc[t].append(s - bias[r])
    return {t: float(np.mean(v)) for t, v in acc.items()}, bias


def classify(pred: dict[str, np.ndarray], human: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    positive = (human["adherence"] > HUMAN_POSITIVE) & (human["aesthetics"] > HUMAN_POSITIVE)
    called = (pred["adherence"] >= threshold) & (pred["aesthetics"] >= threshold)
    tp, fp = int((called & positive).sum()), int((called & ~positive).sum())
    fn, tn = int((~called & positive).sum()), int((~called & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = tp + fp + fn + tn
    return {"threshold": threshold, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall,
            "f1": f1, "accuracy": (tp + tn) / n if n else None}  # fmt: skip


def debias_notes(ratings: list[tuple[str, str, float]]) -> dict[str, Any]:
    """Where de-biasing could not work as the paper's protocol assumes (2-4 raters per triplet), and
    what was done instead. A rater's bias is measured against the other raters of the triplets it
    shares with them; a rater sharing none (or the only rater) gets bias 0: scores used as rated."""
    raters_of = _raters_of(ratings)
    raters = set().union(*raters_of.values())
    shared = set().union(*(v for v in raters_of.values() if len(v) > 1))
    alone = sorted(raters - shared)
    single = sum(len(v) == 1 for v in raters_of.values())
    out: dict[str, Any] = {"raters": len(raters), "debiased": len(shared) > 0, "raters_without_overlap": alone,
                           "triplets_with_one_rater": single, "notes": []}  # fmt: skip
    if len(raters) == 1:
        out["notes"].append(f"one rater only ({alone[0]}): a rater's bias is measured against other raters of the same "
                            "triplets, so no de-biasing was possible; the scores are used as rated")  # fmt: skip
    elif alone:
        out["notes"].append(f"rater(s) {alone} share no triplet with another rater: their bias cannot be measured and "
                            "their scores are used as rated")  # fmt: skip
    if single and len(raters) > 1:
        out["notes"].append(f"{single} of {len(raters_of)} triplets have one rater only (the paper's protocol: 2-4 per "
                            "triplet): each takes that rater's de-biased score")  # fmt: skip
    return out


def _ratings(path, excluded: Counter, notes: list[str], run_dir, triplet_col, rater_col, judge=None):
    rows = read_ratings(path, excluded, triplet_col, rater_col)
    run_scores = None
    if run_dir is not None:
        rows, run_scores = check_against_run(rows, run_dir, excluded, notes, judge)
    if not rows:
        raise InputError(f"ratings file {path}: no usable rating rows ({dict(excluded)})")
    per_axis = {a: [(r["triplet"], r["rater"], r[a]) for r in rows] for a in AXES}
    cats: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["category"] is not None:
            cats[r["triplet"]][str(r["category"])] += 1
    return per_axis, {t: c.most_common(1)[0][0] for t, c in cats.items()}, run_scores


def human_scores(ratings_path) -> tuple[dict[str, tuple[float, float]], dict[str, str], Counter]:
    """(de-biased (adherence, aesthetics) per rated triplet, category per triplet, counted
    exclusions): the targets `nhr-ray tune-judge` trains a validator on, read and de-biased exactly
    as `calibrate` reads and de-biases them."""
    excluded: Counter = Counter()
    per_axis, category, _ = _ratings(ratings_path, excluded, [], None, None, None)
    human = {a: debias(per_axis[a])[0] for a in AXES}
    return {t: (human["adherence"][t], human["aesthetics"][t]) for t in human["adherence"]}, category, excluded


def calibrate(ratings_path, predictions_path=None, threshold: float = 4.7, sweep: list[float] | None = None, *,
              run_dir=None, triplet_col: str | None = None, rater_col: str | None = None,
              predictions_triplet_col: str | None = None, allow_simulated_judge: bool = False,
              judge: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Judge a validator against de-biased ratings. Predictions come from `predictions_path`, or, when
    only `run_dir` is given, from the validator scores that run recorded for the rated items (refused
    when a simulated validator recorded them on images the simulation did not make, unless allowed);
    `judge`: those of one judge of the run's ensemble validator (its calibration for combine: calibrated)."""
    if judge is not None and (run_dir is None or predictions_path is not None):
        raise InputError("--judge reads one judge's scores from the run: give --run and no predictions file")
    if predictions_path is None and run_dir is None:
        raise InputError("no predictions: give a predictions file, or the run (its validator's recorded scores are used)")
    judge_info = run_judge(run_dir, allow_simulated_judge) if predictions_path is None else None
    if judge_info is not None and judge is not None:
        judge_info = {**judge_info, "ensemble_judge": judge}
    excluded: Counter = Counter()
    notes: list[str] = []
    per_axis, category, run_scores = _ratings(ratings_path, excluded, notes, run_dir, triplet_col, rater_col, judge)
    human_by_axis, biases = {}, {}
    for a in AXES:
        human_by_axis[a], biases[a] = debias(per_axis[a])
    rated = set(human_by_axis["adherence"])
    if predictions_path is not None:
        preds = read_predictions(predictions_path, rated, excluded, predictions_triplet_col)
    else:
        preds = run_predictions(run_scores, rated)
        notes.append(f"predictions: the validator scores recorded in {run_dir}")
    if not preds:
        raise InputError(f"no prediction matches a rated triplet ({dict(excluded)})")
    excluded["ratings_without_prediction"] = len(rated - set(preds))
    ids = sorted(preds)
    pred = {a: np.array([preds[t][i] for t in ids]) for i, a in enumerate(AXES)}
    human = {a: np.array([human_by_axis[a][t] for t in ids]) for a in AXES}
    report: dict[str, Any] = {"n_triplets": len(ids), "n_ratings": len(per_axis["adherence"]),
                              "n_raters": len(biases["adherence"]), "threshold": threshold,
                              "human_positive_above": HUMAN_POSITIVE, "excluded": dict(excluded),
                              "debias": debias_notes(per_axis["adherence"]), "notes": notes, "judge": judge_info}  # fmt: skip
    report["axes"] = {a: {"mae": float(np.abs(pred[a] - human[a]).mean()), "spearman": spearman(pred[a], human[a]),
                          "mean_validator": float(pred[a].mean()), "mean_human": float(human[a].mean()),
                          # the ensemble's `calibrated` rule reads these two (config/judging.py)
                          "bias": float((pred[a] - human[a]).mean()), "error_sd": float((pred[a] - human[a]).std())}
                      for a in AXES}  # fmt: skip
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(ids):
        by_cat[category.get(t, "unknown")].append(i)
    if category:
        report["per_category"] = {c: {"n": len(ix), **{f"spearman_{a}": spearman(pred[a][ix], human[a][ix]) for a in AXES}}
                                  for c, ix in sorted(by_cat.items())}  # fmt: skip
    report["classifier"] = classify(pred, human, threshold)
    sweep = sweep if sweep is not None else [round(1.0 + 0.1 * k, 2) for k in range(41)]
    report["sweep"] = [classify(pred, human, x) for x in sweep]
    report["rater_bias"] = biases
    report["_arrays"] = {"ids": ids, "pred": pred, "human": human}
    return report


def write_report(report: dict[str, Any], out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = report.pop("_arrays")
    (out / "calibration.json").write_text(json.dumps(report, indent=2))
    return [out / "calibration.json", *_plots(report, arrays, out)]


def _plots(report: dict[str, Any], arrays: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axs = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, a in zip(axs, AXES):
        ax.scatter(arrays["human"][a], arrays["pred"][a], s=8, alpha=0.5)
        ax.plot([1, 5], [1, 5], color="grey", lw=1)
        m = report["axes"][a]
        rho = "n/a" if m["spearman"] is None else f"{m['spearman']:.3f}"
        ax.set(title=f"{a}: MAE {m['mae']:.3f}, rho {rho}", xlabel="de-biased human score", ylabel="validator score",
               xlim=(0.9, 5.1), ylim=(0.9, 5.1))  # fmt: skip
    fig.tight_layout()
    paths.append(out / "scatter.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = [s["threshold"] for s in report["sweep"]]
    for key in ("precision", "recall", "f1", "accuracy"):
        ax.plot(xs, [np.nan if s[key] is None else s[key] for s in report["sweep"]], label=key)
    ax.axvline(report["threshold"], color="grey", ls="--", lw=1)
    ax.set(xlabel="validator threshold on both axes", ylabel="value", ylim=(0, 1.02),
           title=f"classifier vs humans (both > {HUMAN_POSITIVE})")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    paths.append(out / "threshold_sweep.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
