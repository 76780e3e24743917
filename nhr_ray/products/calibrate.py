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

Bad input is either an error (a missing column, a triplet predicted twice) or a counted exclusion
(a non-numeric or out-of-range score, a prediction for a triplet nobody rated, a rated triplet with
no prediction); the counts are in the report's `excluded`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nhr_ray.products.tables import InputError, as_float, read_table, require_columns

AXES = ("adherence", "aesthetics")
HUMAN_POSITIVE = 4.0  # the paper's positive class: both de-biased human scores above this
SCORE_RANGE = (1.0, 5.0)


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


def debias(ratings: list[tuple[str, str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """[(triplet, rater, score)] of one axis -> (de-biased score per triplet, bias per rater)."""
    by_t: dict[str, list[float]] = defaultdict(list)
    by_r: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for t, r, s in ratings:
        by_t[t].append(s)
        by_r[r].append((t, s))
    m = {t: float(np.mean(v)) for t, v in by_t.items()}
    bias = {r: float(np.mean([s for _, s in v]) - np.mean([m[t] for t in {t for t, _ in v}])) for r, v in by_r.items()}
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


def _load_ratings(path, excluded: Counter) -> tuple[dict[str, list[tuple[str, str, float]]], dict[str, str]]:
    table = read_table(path)
    require_columns(table, ["triplet", "rater", *AXES], f"ratings file {path}")
    has_cat = "category" in table.column_names
    per_axis: dict[str, list[tuple[str, str, float]]] = {a: [] for a in AXES}
    cats: dict[str, Counter] = defaultdict(Counter)
    cols = ["triplet", "rater", *AXES] + (["category"] if has_cat else [])
    for row in table.select(cols).to_pylist():
        t, r = row["triplet"], row["rater"]
        if t is None or r is None or str(t) == "" or str(r) == "":
            excluded["ratings_missing_id"] += 1
            continue
        scores = {a: as_float(row[a]) for a in AXES}
        if any(v is None for v in scores.values()):
            excluded["ratings_non_numeric"] += 1
            continue
        if any(not SCORE_RANGE[0] <= v <= SCORE_RANGE[1] for v in scores.values()):
            excluded["ratings_out_of_range"] += 1
            continue
        for a in AXES:
            per_axis[a].append((str(t), str(r), scores[a]))
        if has_cat and row["category"] is not None:
            cats[str(t)][str(row["category"])] += 1
    if not per_axis["adherence"]:
        raise InputError(f"ratings file {path}: no usable rating rows ({dict(excluded)})")
    return per_axis, {t: c.most_common(1)[0][0] for t, c in cats.items()}


def _load_predictions(path, rated: set[str], excluded: Counter) -> dict[str, tuple[float, float]]:
    table = read_table(path)
    require_columns(table, ["triplet", *AXES], f"predictions file {path}")
    out: dict[str, tuple[float, float]] = {}
    for row in table.select(["triplet", *AXES]).to_pylist():
        t = None if row["triplet"] is None else str(row["triplet"])
        if t in out:
            raise InputError(f"predictions file {path}: triplet {t!r} is predicted more than once")
        if t not in rated:
            excluded["predictions_unknown_triplet"] += 1
            continue
        adh, aes = as_float(row["adherence"]), as_float(row["aesthetics"])
        if adh is None or aes is None:
            excluded["predictions_non_numeric"] += 1  # an unparseable validator answer: counted, not scored
            continue
        out[t] = (adh, aes)
    return out


def human_scores(ratings_path) -> tuple[dict[str, tuple[float, float]], dict[str, str], Counter]:
    """(de-biased (adherence, aesthetics) per rated triplet, category per triplet, counted
    exclusions): the targets `nhr-ray tune-judge` trains a validator on, read and de-biased exactly
    as `calibrate` reads and de-biases them."""
    excluded: Counter = Counter()
    per_axis, category = _load_ratings(ratings_path, excluded)
    human = {a: debias(per_axis[a])[0] for a in AXES}
    return {t: (human["adherence"][t], human["aesthetics"][t]) for t in human["adherence"]}, category, excluded


def calibrate(ratings_path, predictions_path, threshold: float = 4.7, sweep: list[float] | None = None) -> dict[str, Any]:
    excluded: Counter = Counter()
    per_axis, category = _load_ratings(ratings_path, excluded)
    human_by_axis, biases = {}, {}
    for a in AXES:
        human_by_axis[a], biases[a] = debias(per_axis[a])
    rated = set(human_by_axis["adherence"])
    preds = _load_predictions(predictions_path, rated, excluded)
    if not preds:
        raise InputError(f"no prediction matches a rated triplet ({dict(excluded)})")
    excluded["ratings_without_prediction"] = len(rated - set(preds))
    ids = sorted(preds)
    pred = {a: np.array([preds[t][i] for t in ids]) for i, a in enumerate(AXES)}
    human = {a: np.array([human_by_axis[a][t] for t in ids]) for a in AXES}
    report: dict[str, Any] = {"n_triplets": len(ids), "n_ratings": len(per_axis["adherence"]),
                              "n_raters": len(biases["adherence"]), "threshold": threshold,
                              "human_positive_above": HUMAN_POSITIVE, "excluded": dict(excluded)}  # fmt: skip
    report["axes"] = {a: {"mae": float(np.abs(pred[a] - human[a]).mean()), "spearman": spearman(pred[a], human[a]),
                          "mean_validator": float(pred[a].mean()), "mean_human": float(human[a].mean())} for a in AXES}  # fmt: skip
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
