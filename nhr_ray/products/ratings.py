"""Ratings and predictions files for `nhr-ray calibrate`: their column names, their rows' checks, and
a check against the run they rate.

Column names. The item id may be spelt `triplet`, `triplet_id` or `sample_id`, the rater `rater`,
`rater_id`, `annotator` or `annotator_id`: a file must hold exactly one spelling of each (two
competing columns are an error naming both), or the flags `--triplet-col` / `--rater-col` /
`--predictions-triplet-col` name the column to use.

Rows. A row without an id, with a score that is no number or lies outside 1-5, or repeating a
(rater, triplet) already seen (the later row counts) is dropped and counted under a reason in
DROPPED, which also says in words what each reason means.

The run (`--run RUN`). A ratings file whose `run_id` column names another run is refused. A row
rating an id the run does not hold (no triplet `sample_id`, no `attempt_id`) is dropped and
counted. Without a predictions file, the validator scores the run recorded for each rated item are
the predictions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nhr_ray.products.tables import InputError, as_float, read_table, require_columns

AXES = ("adherence", "aesthetics")
SCORE_RANGE = (1.0, 5.0)
TRIPLET_NAMES = ("triplet", "triplet_id", "sample_id")
RATER_NAMES = ("rater", "rater_id", "annotator", "annotator_id")
DROPPED = {
    "ratings_missing_id": "a rating without a triplet id or a rater",
    "ratings_non_numeric": "a rating whose score is not a number",
    "ratings_out_of_range": "a rating with a score outside 1-5",
    "ratings_duplicate": "a rater rated the same triplet again (the later row counts)",
    "ratings_unknown_triplet": "a rating of an id the run does not hold",
    "predictions_unknown_triplet": "a prediction for a triplet nobody rated",
    "predictions_non_numeric": "a prediction that is not a number (an unparseable validator answer)",
    "ratings_without_prediction": "a rated triplet with no prediction (with --run and no predictions file: an item "
                                  "the run's validator never scored, as it left the cascade earlier)",
}


def pick_column(table: pa.Table, names: tuple[str, ...], chosen: str | None, what: str, flag: str, where: str) -> str:
    """The one column holding `what`: the one named by `flag`, else the only one of its spellings."""
    if chosen is not None:
        require_columns(table, [chosen], f"{where} ({flag} {chosen})")
        return chosen
    found = [c for c in names if c in table.column_names]
    if len(found) > 1:
        raise InputError(f"{where} has competing {what} columns {found}: name the one to use with {flag}")
    if not found:
        raise InputError(f"{where} has no {what} column (one of {list(names)}, or name it with {flag}); "
                         f"it has {table.column_names}")  # fmt: skip
    return found[0]


def read_ratings(path, excluded: Counter, triplet_col: str | None = None, rater_col: str | None = None) -> list[dict]:
    """Valid rating rows {triplet, rater, adherence, aesthetics, category, run_id}, one per (rater, triplet)."""
    table = read_table(path)
    where = f"ratings file {path}"
    t_col = pick_column(table, TRIPLET_NAMES, triplet_col, "triplet id", "--triplet-col", where)
    r_col = pick_column(table, RATER_NAMES, rater_col, "rater", "--rater-col", where)
    require_columns(table, list(AXES), where)
    extra = [c for c in ("category", "run_id") if c in table.column_names]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for row in table.select([t_col, r_col, *AXES, *extra]).to_pylist():
        t, r = row[t_col], row[r_col]
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
        key = (str(t), str(r))
        if rows.pop(key, None) is not None:
            excluded["ratings_duplicate"] += 1
        rows[key] = {"triplet": key[0], "rater": key[1], **scores, "category": row.get("category"),
                     **({"run_id": row["run_id"]} if "run_id" in extra else {})}  # fmt: skip
    return list(rows.values())


def read_predictions(path, rated: set[str], excluded: Counter, triplet_col: str | None = None) -> dict[str, tuple[float, float]]:
    table = read_table(path)
    where = f"predictions file {path}"
    t_col = pick_column(table, TRIPLET_NAMES, triplet_col, "triplet id", "--predictions-triplet-col", where)
    require_columns(table, list(AXES), where)
    out: dict[str, tuple[float, float]] = {}
    for row in table.select([t_col, *AXES]).to_pylist():
        t = None if row[t_col] is None else str(row[t_col])
        if t in out:
            raise InputError(f"{where}: triplet {t!r} is predicted more than once")
        if t not in rated:
            excluded["predictions_unknown_triplet"] += 1
            continue
        adh, aes = as_float(row["adherence"]), as_float(row["aesthetics"])
        if adh is None or aes is None:
            excluded["predictions_non_numeric"] += 1  # an unparseable validator answer: counted, not scored
            continue
        out[t] = (adh, aes)
    return out


def check_against_run(rows: list[dict], run_dir, excluded: Counter, notes: list[str], judge: str | None = None) -> tuple[list[dict], dict]:
    """-> (the rows whose id the run holds, the run's validator scores per rated id). Refuses a file
    of another run. `judge`: the scores of that judge of the run's validator (attempts table,
    `validation_judges`) instead of the combined ones."""
    from nhr_ray.products.rate.sample import open_run, run_identity

    run = open_run(run_dir)
    run_id = run_identity(run)["run_id"]
    foreign = Counter(r["run_id"] for r in rows if r.get("run_id") not in (None, run_id))
    if foreign:
        raise InputError(f"the ratings are of another run: run_id {dict(foreign)} (rows), while {run_dir} is run_id "
                         f"{run_id}; pass the run they were made from")  # fmt: skip
    if rows and "run_id" not in rows[0]:
        notes.append("the ratings have no run_id column: they were checked against the run by their ids only")
    ids = pa.array(sorted({r["triplet"] for r in rows}), pa.string())
    scores: dict[str, tuple[Any, Any]] = {}
    if judge is not None:
        scores = judge_scores(run, ids, judge, notes)
    for prefix, col in (("triplets", "sample_id"), ("attempts", "attempt_id")) if judge is None else ():
        for b in run.batches(prefix, [col, *AXES], 4096):
            hit = b.filter(pc.is_in(b.column(col), value_set=ids))
            for r in hit.to_pylist():
                scores.setdefault(r[col], (r["adherence"], r["aesthetics"]))
    kept = [r for r in rows if r["triplet"] in scores]
    if len(kept) < len(rows):
        excluded["ratings_unknown_triplet"] += len(rows) - len(kept)
    return kept, scores


def run_predictions(scores: dict[str, tuple[Any, Any]], rated: set[str]) -> dict[str, tuple[float, float]]:
    """The run's own validator scores as predictions (an item it never scored has none)."""
    out = {}
    for t in sorted(rated):
        adh, aes = (as_float(v) for v in scores.get(t, (None, None)))
        if adh is not None and aes is not None:
            out[t] = (adh, aes)
    return out


def judge_scores(run, ids: pa.Array, judge: str, notes: list[str]) -> dict[str, tuple[Any, Any]]:
    """One judge's recorded scores (attempts table, `validation_judges`) for the rated ids: attempts,
    and forward triplets through their attempt. An id the judge did not score maps to (None, None)
    (an inverse or composed triplet: the run keeps each judge's scores of attempts only)."""
    via: dict[str, str] = {}  # attempt id -> rated id
    for b in run.batches("triplets", ["sample_id", "attempt_id", "kind"], 4096):
        for r in b.filter(pc.is_in(b.column("sample_id"), value_set=ids)).to_pylist():
            if r["kind"] == "forward" and r["attempt_id"]:
                via[r["attempt_id"]] = r["sample_id"]
    ids = pa.concat_arrays([ids, pa.array(sorted(via), pa.string())])
    out: dict[str, tuple[Any, Any]] = {}
    names: set[str] = set()
    for b in run.batches("attempts", ["attempt_id", "validation_judges"], 4096):
        for r in b.filter(pc.is_in(b.column("attempt_id"), value_set=ids)).to_pylist():
            for j in r.get("validation_judges") or []:
                names.add(j["judge"])
                if j["judge"] == judge:
                    out[via.get(r["attempt_id"], r["attempt_id"])] = (j["adherence"], j["aesthetics"])
    if not names:
        raise InputError(f"--judge {judge}: the run's attempts table keeps no judge's scores of the rated items "
                         "(a run written before per-judge scores were kept, or ratings of inverse/composed triplets only)")
    if judge not in names:
        raise InputError(f"--judge {judge}: the run's validator has no such judge; its judges: {sorted(names)}")
    notes.append(f"predictions: judge {judge!r} of the run's validator (attempts and forward triplets only)")
    return out
