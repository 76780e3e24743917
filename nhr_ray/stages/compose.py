"""Stage 10: bootstrap composition. Two kept edits Ie1, Ie2 of the same I0 give <Ie1, p', Ie2>, where
p' is the inverse of pe1 followed by pe2. Scores of a composed triplet are the lower of its two
parents' on each axis (`score_source` 'inherited', `scores_from` both parents: it was not judged
itself) unless `composition.rescore` sends it through the validator; parents lists both forward
sample_ids.

A pair is skipped, counted by reason, when either edit is the designer's composite "remove all of
them" line (`composite_line`), or when the two edits name the same object (`same_object`: one's
object words contain the other's, e.g. "Make the mug on the right green" and "Replace the blue mug
on the right with a vase"): undoing the first and then editing the same thing gives a
self-cancelling instruction ("Place a cactus ..., then remove the cactus")."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

from nhr_ray.io.rows import TripletRow
from nhr_ray.records import geometric_score, sample_id
from nhr_ray.stages.targets import is_composite, same_object


def skip_reason(first: str, second: str) -> str | None:
    """Why the pair (undo `first`, then apply `second`) is not composed, or None."""
    if is_composite(first) or is_composite(second):
        return "composite_line"
    return "same_object" if same_object(first, second) else None


def combine(inverse_1: str, forward_2: str) -> str:
    a = inverse_1.strip().rstrip(".")
    b = forward_2.strip()
    return f"{a}, then {b[:1].lower()}{b[1:]}"


def compose_source(forwards: list[TripletRow], inverses: dict[str, str], run_seed: int, max_per_source: int | None,
                   skipped: Counter | None = None) -> list[TripletRow]:  # fmt: skip
    """forwards: kept forward triplets of ONE source image; inverses: forward sample_id -> inverse text.
    Skipped pairs are counted in `skipped` as 'pair_skipped:<reason>'."""
    usable = sorted((f for f in forwards if f.sample_id in inverses), key=lambda f: f.attempt_id)
    out = []
    for f1, f2 in permutations(usable, 2):
        if max_per_source is not None and len(out) >= max_per_source:
            break
        why = skip_reason(f1.edit_instruction, f2.edit_instruction)
        if why:
            if skipped is not None:
                skipped[f"pair_skipped:{why}"] += 1
            continue
        adh, aes = min(f1.adherence, f2.adherence), min(f1.aesthetics, f2.aesthetics)
        lineage = f"comp:{f1.attempt_id}|{f2.attempt_id}"
        out.append(TripletRow(
            sample_id=sample_id(run_seed, "composed", lineage), kind="composed", source_image=f1.edited_image,
            edited_image=f2.edited_image, edit_instruction=combine(inverses[f1.sample_id], f2.edit_instruction),
            category="composite", style=f1.style, img_width=f1.img_width, img_height=f1.img_height, adherence=adh,
            aesthetics=aes, score=geometric_score(adh, aes), prompt=f1.prompt, source_seed=f1.source_seed,
            edit_seed=f2.edit_seed, parents=[f1.sample_id, f2.sample_id], lineage=lineage, source_id=f1.source_id,
            attempt_id=f2.attempt_id, score_source="inherited", scored_by=None, scores_from=[f1.sample_id, f2.sample_id],
        ))  # fmt: skip
    return out
