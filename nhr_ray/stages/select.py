"""Best-of selection (end of stage 8): for each (I0, pe) keep only the validated attempt with the highest
sqrt(aesthetics x adherence); ties go to the lower attempt index, so the choice is deterministic.
Each winner is a forward triplet <I0, pe, Ie> whose scores are the validator's own."""

from __future__ import annotations

from typing import Iterable

from nhr_ray.io.rows import TripletRow
from nhr_ray.records import geometric_score, sample_id


def select_best(rows: Iterable[dict]) -> dict[str, dict]:
    """rows: validated attempts with pair_id, attempt_index, adherence, aesthetics. -> pair_id -> row."""
    best: dict[str, tuple[tuple[float, int], dict]] = {}
    for r in rows:
        key = (geometric_score(r["adherence"], r["aesthetics"]), -int(r["attempt_index"]))
        cur = best.get(r["pair_id"])
        if cur is None or key > cur[0]:
            best[r["pair_id"]] = (key, r)
    return {p: r for p, (_, r) in best.items()}


def forward_triplet(w: dict, s: dict, run_seed: int) -> TripletRow:
    """A winner's triplet from its attempts row `w` and its source's sources row `s`."""
    aid = w["attempt_id"]
    return TripletRow(
        sample_id=sample_id(run_seed, "forward", aid), kind="forward", source_image=s["image"],
        edited_image=w["edited_image"], edit_instruction=w["edit_instruction"], category=w["category"],
        style=s["style"], img_width=s["img_width"], img_height=s["img_height"], adherence=w["adherence"],
        aesthetics=w["aesthetics"], score=geometric_score(w["adherence"], w["aesthetics"]), prompt=s["prompt"],
        source_seed=s["source_seed"], edit_seed=w["edit_seed"], parents=[], lineage=aid, source_id=s["source_id"],
        attempt_id=aid, score_source="judged", scored_by="validation", scores_from=[],
    )  # fmt: skip
