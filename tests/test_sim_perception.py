"""The simulation sees only what a real model sees (issue 17): a scene travels in the pixels the
simulated T2I model and editor write (tag.py), the editor edits the image it is handed (photos
included), and the judges judge the images and instruction they are handed. So handing a judge the
wrong image, another pair's instruction or the images swapped shows in what it answers."""

import numpy as np
import pytest

from nhr_ray.backends.sim import oracle, tag
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.perceive import instruction_in, perceive
from nhr_ray.config import load_config
from nhr_ray.io.images import encode
from nhr_ray.parsing import parse_scores
from nhr_ray.roles import BackendContext, EditRequest, T2IRequest, VLMRequest, build_backend

PROMPT = ("A photograph of a wooden table, seen at eye level. In the scene there is a large red apple on the left, "
          "a medium blue mug on the right and a small green vase in the centre. Soft morning light, calm mood.")
INSTR = ["Remove the red apple on the left.", "Make the mug on the right purple.", "Remove the green vase in the centre."]


def backend(role, **sim):
    cfg = load_config(overrides=[f"sim.{k}={v}" for k, v in {"malformed_rate": 0, **sim}.items()])
    return build_backend(role, "sim", {}, BackendContext(role, 0, 1.0, cfg.sim, run_config=cfg))


@pytest.fixture(scope="module")
def edits():
    """60 sources, three instructions each, five attempts each: (source, instruction, edited) triples."""
    t2i = backend("t2i", missing_object_rate=0.0, implausible_rate=0.0)
    ed = backend("editor")
    srcs = [a.image for a in t2i.generate([T2IRequest(f"S{i}.n00", PROMPT, i, 192, 128) for i in range(60)])]
    reqs = [EditRequest(f"S{i}.n00.i{k}.m{m}", src, INSTR[k], m) for i, src in enumerate(srcs) for k in range(3) for m in range(5)]
    return [(r.image, r.instruction, a.image) for r, a in zip(reqs, ed.edit(reqs))]


def _passes(judge, triples) -> np.ndarray:
    reqs = [VLMRequest(f"a{n}", "edit_scores", f"Instruction: {ins}\n", [src, out]) for n, (src, ins, out) in enumerate(triples)]
    scores = [parse_scores(a.text).value for a in judge.ask(reqs)]
    return np.array([s["adherence"] >= 4.7 and s["aesthetics"] >= 4.7 for s in scores])


def test_the_validator_judges_the_images_and_instruction_it_is_handed(edits):
    """Of the truly good candidates (oracle: a careful human scores both axes above 4.0), the fallible
    validator passes about 0.45 when handed them as they are (the paper's tuned validator: recall
    0.446), and under 0.1 when handed another edit of the same source, the images swapped or another
    instruction: what it passes then is its lapses (quality.py), not what it was asked about."""
    good = np.array([oracle.truly_good(encode(s), encode(o), i) for s, i, o in edits])
    judge = backend("validator")
    recall = {}
    other = [edits[n - n % 15 + (n % 15 + 5) % 15] for n in range(len(edits))]  # same source, another instruction's edit
    for name, triples in {"right": edits,
                          "wrong image": [(s, i, o2) for (s, i, _), (_, _, o2) in zip(edits, other)],
                          "swapped": [(o, i, s) for s, i, o in edits],
                          "other instruction": [(s, INSTR[(INSTR.index(i) + 1) % 3], o) for s, i, o in edits]}.items():  # fmt: skip
        recall[name] = float((_passes(judge, triples) & good).sum() / good.sum())
    assert good.sum() >= 60, good.sum()  # enough good candidates that a recall is measured to +-0.06
    assert 0.3 < recall["right"] < 0.6, recall
    for name in ("wrong image", "swapped", "other instruction"):
        assert recall[name] < 0.35 * recall["right"], (name, recall)


def test_a_clean_edit_is_perceived_clean_and_its_inverse_undoes_it(edits):
    clean = [(s, i, o) for s, i, o in edits if perceive(s, o, i).outcome == "clean"]
    assert len(clean) >= 10
    for s, i, o in clean[:10]:
        inverse = {"Remove the red apple on the left.": "Place a large red apple on the left.",
                   "Make the mug on the right purple.": "Make the mug on the right blue.",
                   "Remove the green vase in the centre.": "Place a small green vase in the centre."}[i]
        assert perceive(o, s, inverse).done > 0.85  # the inverse triplet, judged on its own images and words
        assert perceive(o, s, "Undo the previous edit.").outcome != "clean"


@pytest.mark.parametrize("outcome", ["clean", "partial", "wrong_object", "collateral_drift", "scattered_noise",
                                     "no_change", "off_size"])
def test_the_editor_edits_a_photo_it_is_handed(outcome):
    from nhr_ray.backends.sim.photo_edit import edit_photo

    photo = np.random.default_rng(1).integers(60, 200, (120, 160, 3), np.uint8)
    out = edit_photo(photo, "Make the mug on the left red.", outcome, np.random.default_rng(0))
    seen = perceive(photo, out, "Make the mug on the left red.")
    assert seen.outcome == outcome and not seen.tagged
    if out.shape == photo.shape:  # the given pixels, changed where the outcome says, not a new picture
        changed = (np.abs(out.astype(int) - photo.astype(int)).max(axis=2) > 40).mean()
        assert changed < 0.5


def test_photos_flow_through_every_simulated_role():
    photo = np.random.default_rng(2).integers(0, 256, (96, 128, 3), np.uint8)
    out = backend("editor").edit([EditRequest("P1.n00.i0.m0", photo, "Remove the cup on the left.", 3)])[0].image
    assert out is not None and tag.read(out) is None
    for role in ("gate", "prefilter", "validator"):
        q = "plausibility" if role == "gate" else "edit_scores"
        ans = backend(role).ask([VLMRequest("P1", q, "Instruction: Remove the cup on the left.", [photo, out][: 1 + (q != "plausibility")])])
        assert ans[0].text and not ans[0].error


def test_the_instruction_is_read_from_the_prompt_it_is_given():
    assert instruction_in("Look at both images.\nInstruction: Remove the red apple on the left.\nAnswer in JSON.") \
        == "Remove the red apple on the left."
    assert instruction_in('The edit was asked as "Make the mug on the right purple." Rate it.') == "Make the mug on the right purple."
    assert W.parse_instruction(instruction_in("no instruction here")) is None


def test_the_prefilters_yes_no_questions_reject_what_they_should(edits):
    """'Only the asked-for change?' says no to most edits that changed something else (collateral drift,
    the wrong object) and yes to most clean ones; 'is it pleasing?' (the edited image alone) says no
    to most images strewn with specks. Each answer comes from the images and words handed over."""
    from nhr_ray.parsing import parse_yes_no

    judge = backend("prefilter")
    kinds = [perceive(s, o, i).outcome for s, i, o in edits]
    only = judge.ask([VLMRequest(f"u{n}", "unwanted_change", f"Instruction: {i}\nWas only this change made?", [s, o])
                      for n, (s, i, o) in enumerate(edits)])  # fmt: skip
    pleasing = judge.ask([VLMRequest(f"p{n}", "aesthetics", "Is this image pleasing?", [o]) for n, (_, _, o) in enumerate(edits)])

    def yes_rate(answers, kind):
        got = [parse_yes_no(a.text).value for a, k in zip(answers, kinds) if k == kind]
        assert len(got) >= 15, (kind, len(got))
        return sum(got) / len(got)

    assert yes_rate(only, "clean") > 0.85
    assert yes_rate(only, "collateral_drift") < 0.4 and yes_rate(only, "wrong_object") < 0.2
    assert yes_rate(pleasing, "clean") > 0.8 and yes_rate(pleasing, "scattered_noise") < 0.3
