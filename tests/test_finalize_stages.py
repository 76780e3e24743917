from collections import Counter
from dataclasses import replace

import pytest

from nhr_ray.config import InversionConfig
from nhr_ray.records import Verdict
from nhr_ray.stages.compose import combine, compose_source, skip_reason
from nhr_ray.stages.consistency import apply_consistency
from nhr_ray.stages.inversion import check_inverse, inverse_triplet
from nhr_ray.stages.select import select_best
from triplet_rows import triplet


def test_best_of_picks_highest_geometric_score_and_breaks_ties_by_attempt():
    rows = [
        {"pair_id": "p", "attempt_index": 0, "adherence": 4.8, "aesthetics": 4.8},
        {"pair_id": "p", "attempt_index": 1, "adherence": 5.0, "aesthetics": 4.5},  # sqrt(22.5) < 4.8
        {"pair_id": "p", "attempt_index": 3, "adherence": 4.8, "aesthetics": 4.8},  # tie -> lower index wins
        {"pair_id": "q", "attempt_index": 2, "adherence": 4.7, "aesthetics": 4.7},
    ]
    best = select_best(rows)
    assert best["p"]["attempt_index"] == 0 and best["q"]["attempt_index"] == 2


def test_inverse_checks():
    fw = ["revert", "undo", "restore"]
    assert check_inverse('Instruction: "Place a red apple on the left."', fw, 300) == ("Place a red apple on the left.", "ok")
    assert check_inverse("Put the cat back on the sofa.", fw, 300) == (None, "forbidden_word")
    assert check_inverse("Add a backpack on the chair.", fw, 300)[1] == "ok"  # whole words only
    assert check_inverse("Sure!\n\nAdd the cat.", fw, 300) == (None, "not_single_instruction")
    assert check_inverse("   ", fw, 300) == (None, "empty")
    assert check_inverse("x" * 400, fw, 300) == (None, "too_long")


ORDINARY = [  # ordinary uses of back / again / original: a good inverse must not be dropped for them
    "Place a brass lamp at the back of the room.",
    "Add a wooden chair with its back to the window.",
    "Add a dog looking back at the camera.",
    "Add a man leaning back in his chair.",
    "Hang a poster on the back wall.",
    'Add a neon sign that reads "Open again" above the door.',
    "Add a dog jumping again and again on the lawn.",
    "Add a framed original Miro print above the sofa.",
    "Put a small blue backpack on the chair.",
]
UNDOING = [  # wording that refers to undoing the earlier edit
    "Put the cat back on the sofa.", "Turn the sky back to blue.", "Bring back the dog.", "Put the apple back.",
    "Move the vase back where it was.", "Make the car red again.", "Give the mug its original colour.",
    "Return the lamp to its original position.", "Give the mug its earlier colour.", "Make the lamp as it was before.",
    "Undo the previous edit.", "The edit is reverted: show the table.", "Restored the blue sky.",
]  # fmt: skip


@pytest.mark.parametrize("text", ORDINARY)
def test_inverse_filter_passes_ordinary_back_again_original(text):
    assert check_inverse(text, InversionConfig().forbidden_words, 300) == (text, "ok")


@pytest.mark.parametrize("text", UNDOING)
def test_inverse_filter_drops_undo_wording(text):
    assert check_inverse(text, InversionConfig().forbidden_words, 300) == (None, "forbidden_word")


def _fwd(i, adh=4.8, aes=4.9, **kw):
    return triplet(**{"sample_id": f"f{i}", "attempt_id": f"S1.n0.i{i}.m0", "lineage": f"S1.n0.i{i}.m0",
                      "edit_instruction": f"Remove thing {i}.", "edited_image": {"bytes": bytes([i]), "path": None},
                      "adherence": adh, "aesthetics": aes, "edit_seed": i, **kw})


def test_composition_uses_every_ordered_pair_with_an_inverse():
    fw = [_fwd(0), _fwd(1, 4.7), _fwd(2)]
    inv = {"f0": "Place thing 0.", "f1": "Place thing 1."}
    out = compose_source(fw, inv, 0, None)
    assert [c.parents for c in out] == [["f0", "f1"], ["f1", "f0"]]
    assert out[0].edit_instruction == "Place thing 0, then remove thing 1."
    assert out[0].source_image == fw[0].edited_image and out[0].edited_image == fw[1].edited_image
    assert out[0].adherence == 4.7  # the weaker parent's ...
    # ... and said so: not judged itself, its scores inherited from both parents
    assert [(c.score_source, c.scored_by, c.scores_from) for c in out] == [("inherited", None, ["f0", "f1"]),
                                                                         ("inherited", None, ["f1", "f0"])]
    assert len(compose_source(fw, inv, 0, 1)) == 1
    assert combine("Add a cat.", "Remove the dog.") == "Add a cat, then remove the dog."


def test_composition_skips_the_composite_line_and_pairs_on_the_same_object():
    texts = ["Remove the cactus on the left.", "Make the bowl in the centre green.",
             "Replace the blue bowl in the centre with a red vase.", "Remove the lamp on the right.",
             "Remove all the objects: the cactus, the bowl and the lamp."]  # fmt: skip
    fw = [_fwd(i, edit_instruction=t) for i, t in enumerate(texts)]
    inv = {f.sample_id: f"Inverse {i}." for i, f in enumerate(fw)}
    skipped = Counter()
    out = compose_source(fw, inv, 0, None, skipped)
    expect = [(a, b) for a in ("f0", "f1", "f3") for b in ("f0", "f1", "f3") if a != b]
    assert sorted(tuple(c.parents) for c in out) == sorted(expect + [("f0", "f2"), ("f2", "f0"), ("f2", "f3"), ("f3", "f2")])
    # 20 ordered pairs: 8 touch the composite line, 2 colour-then-replace the same bowl
    assert skipped == {"pair_skipped:composite_line": 8, "pair_skipped:same_object": 2}
    assert len(out) == 20 - 10


def test_composition_skip_reasons():
    assert skip_reason("Remove the cactus.", "Remove both of them.") == "composite_line"
    assert skip_reason("Lose the crocheted blanket.", "Make the crocheted blanket teal.") == "same_object"
    assert skip_reason("Remove the apple on the left.", "Make the apple on the right green.") is None
    assert skip_reason("No remote control, thanks.", "Lose the crocheted blanket.") is None


def test_consistency_drops_inverse_twin_and_compositions():
    f0, f1 = _fwd(0), _fwd(1)
    i0 = replace(f0, sample_id="i0", kind="inverse", parents=["f0"])
    i1 = replace(f1, sample_id="i1", kind="inverse", parents=["f1"])
    c01 = replace(f0, sample_id="c01", kind="composed", parents=["f0", "f1"])
    verdicts = {"i0": Verdict("consistency", False, "low_adherence", "", 3.0, 4.9),
                "i1": Verdict("consistency", True, "ok", "", 4.9, 4.8)}
    kept, t = apply_consistency([f0, f1, i0, i1, c01], verdicts)
    assert [k.sample_id for k in kept] == ["f1", "i1"]
    assert t.balanced() and t.kept == 2
    assert t.dropped == {"inverse_low_adherence": 1, "forward_twin_of_failed_inverse": 1, "composed_from_dropped_edit": 1}
    assert kept[1].adherence == 4.9  # the inverse carries its own re-scored values, judged
    assert (kept[1].score_source, kept[1].scored_by, kept[1].scores_from) == ("judged", "consistency", [])
    assert kept[1].score == pytest.approx((4.9 * 4.8) ** 0.5)


def test_an_inverse_inherits_its_forwards_scores_until_judged():
    f = _fwd(3)
    inv = inverse_triplet(f, "Add thing 3.", 0)
    assert (inv.kind, inv.parents, inv.source_image, inv.edited_image) == ("inverse", ["f3"], f.edited_image, f.source_image)
    assert (inv.adherence, inv.score_source, inv.scored_by, inv.scores_from) == (4.8, "inherited", None, ["f3"])
    assert list(inv.to_row()) == list(f.to_row())  # the same columns, no working ones
