"""Stage 10: bootstrap composition. Two kept edits Ie1, Ie2 of the same I0 give <Ie1, p', Ie2>, where
p' is the inverse of pe1 followed by pe2. Scores of a composed triplet are the lower of its two
parents' (it was not judged itself); parents lists both forward sample_ids."""

from __future__ import annotations

from itertools import permutations

from nhr_ray.records import geometric_score, sample_id


def combine(inverse_1: str, forward_2: str) -> str:
    a = inverse_1.strip().rstrip(".")
    b = forward_2.strip()
    return f"{a}, then {b[:1].lower()}{b[1:]}"


def compose_source(forwards: list[dict], inverses: dict[str, str], run_seed: int, max_per_source: int | None) -> list[dict]:
    """forwards: kept forward triplets of ONE source image; inverses: forward sample_id -> inverse text."""
    usable = sorted((f for f in forwards if f["sample_id"] in inverses), key=lambda f: f["attempt_id"])
    out = []
    for f1, f2 in permutations(usable, 2):
        if max_per_source is not None and len(out) >= max_per_source:
            break
        adh = min(f1["adherence"], f2["adherence"])
        aes = min(f1["aesthetics"], f2["aesthetics"])
        lineage = f"comp:{f1['attempt_id']}|{f2['attempt_id']}"
        out.append({
            **{k: f1[k] for k in ("prompt", "style", "img_width", "img_height", "source_seed", "source_id")},
            "sample_id": sample_id(run_seed, "composed", lineage),
            "kind": "composed",
            "source_image": f1["edited_image"],
            "edited_image": f2["edited_image"],
            "edit_instruction": combine(inverses[f1["sample_id"]], f2["edit_instruction"]),
            "category": "composite",
            "adherence": adh,
            "aesthetics": aes,
            "score": geometric_score(adh, aes),
            "edit_seed": f2["edit_seed"],
            "parents": [f1["sample_id"], f2["sample_id"]],
            "lineage": lineage,
            "attempt_id": f2["attempt_id"],
        })
    return out
