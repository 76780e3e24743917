"""The held-out check of a tuned judge: the held-out triplets go through the judge exactly as a mining
run sends them (the role's backend, built from its config: transformers with the saved adapter, or
Gemini with the tuned endpoint), the profile reads the answers, and `nhr-ray calibrate`'s report is
written from them: MAE, Spearman, precision/recall at the threshold. An answer the profile cannot read
is a prediction with no scores, which calibrate counts (`predictions_non_numeric`) and never scores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nhr_ray.judges.profiles import JudgeProfile
from nhr_ray.products.calibrate import calibrate, write_report
from nhr_ray.products.tune.data import Example
from nhr_ray.stages.validation import ask_grouped

PREDICTIONS = "heldout_predictions.parquet"


def predict(backend, profile: JudgeProfile, held: list[Example], batch: int = 8, max_pixels: int = 64_000_000) -> list[dict]:
    rows = []
    for k in range(0, len(held), batch):
        chunk = held[k : k + batch]
        groups = [profile.requests(ex.triplet, ex.instruction, *ex.images(max_pixels)) for ex in chunk]
        for ex, answers in zip(chunk, ask_grouped(backend, groups)):
            err = next((a.error for a in answers if a.error), None)
            p = profile.parse([a.text for a in answers]) if err is None else None
            ok = p is not None and p.ok
            rows.append({"triplet": ex.triplet, "adherence": p.value["adherence"] if ok else None,
                         "aesthetics": p.value["aesthetics"] if ok else None,
                         "outcome": "ok" if ok else (f"error:{err[:80]}" if err else p.reason),
                         "raw": profile.raw([a.text for a in answers])})  # fmt: skip
    return rows


def heldout_report(backend, profile: JudgeProfile, held: list[Example], ratings_path, out, threshold: float) -> dict[str, Any]:
    """Predict, write the predictions and the calibration report into `out`; -> a summary."""
    out = Path(out)
    rows = predict(backend, profile, held)
    schema = pa.schema([("triplet", pa.string()), ("adherence", pa.float64()), ("aesthetics", pa.float64()),
                        ("outcome", pa.string()), ("raw", pa.string())])  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / PREDICTIONS)
    outcomes = Counter(r["outcome"] for r in rows)
    summary: dict[str, Any] = {"n": len(rows), "answered": outcomes.pop("ok", 0), "unreadable": dict(outcomes)}
    if not summary["answered"]:
        summary["calibration"] = None  # nothing to score: calibrate would refuse; the outcomes say why
        return summary
    report = calibrate(ratings_path, out / PREDICTIONS, threshold=threshold)
    write_report(report, out)
    summary["calibration"] = {"axes": report["axes"], "classifier": report["classifier"],
                              "note": "calibration.json's ratings_without_prediction counts the training triplets too"}  # fmt: skip
    return summary
