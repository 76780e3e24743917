"""Typed triplets for unit tests of the final stages: every column with a plain default."""

from nhr_ray.io.rows import TripletRow


def triplet(**kw) -> TripletRow:
    base = dict(sample_id="t", kind="forward", source_image={"bytes": b"s", "path": None},
                edited_image={"bytes": b"e", "path": None}, edit_instruction="Remove the cup.", category="removal",
                style="s", img_width=8, img_height=8, adherence=4.8, aesthetics=4.9, score=None, prompt="p",
                source_seed=1, edit_seed=0, parents=[], lineage="S1.n0.i0.m0", source_id="S1.n0",
                attempt_id="S1.n0.i0.m0", score_source="judged", scored_by="validation", scores_from=[])  # fmt: skip
    return TripletRow(**{**base, **kw})
