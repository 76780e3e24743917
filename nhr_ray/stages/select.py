"""Best-of selection (end of stage 8): for each (I0, pe) keep only the validated attempt with the highest
sqrt(aesthetics x adherence); ties go to the lower attempt index, so the choice is deterministic."""

from __future__ import annotations

from typing import Iterable

from nhr_ray.records import geometric_score


def select_best(rows: Iterable[dict]) -> dict[str, dict]:
    """rows: validated attempts with pair_id, attempt_index, adherence, aesthetics. -> pair_id -> row."""
    best: dict[str, tuple[tuple[float, int], dict]] = {}
    for r in rows:
        key = (geometric_score(r["adherence"], r["aesthetics"]), -int(r["attempt_index"]))
        cur = best.get(r["pair_id"])
        if cur is None or key > cur[0]:
            best[r["pair_id"]] = (key, r)
    return {p: r for p, (_, r) in best.items()}
