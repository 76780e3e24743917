"""The simulation sees only what a real model sees (issue 17): a scene travels in the pixels the
simulated T2I model and editor write (tag.py), the editor edits the image it is handed (photos
included), and the judges judge the images and instruction they are handed. So handing a judge the
wrong image, another pair's instruction or the images swapped shows in what it answers."""

import numpy as np
import pytest

from nhr_ray.backends.sim import tag
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.perceive import instruction_in, perceive
from nhr_ray.config import load_config
from nhr_ray.io.images import decode, encode
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


def _pass_rate(judge, triples) -> float:
    reqs = [VLMRequest(f"a{n}", "edit_scores", f"Instruction: {ins}\n", [src, out]) for n, (src, ins, out) in enumerate(triples)]
    scores = [parse_scores(a.text).value for a in judge.ask(reqs)]
    return float(np.mean([s["adherence"] >= 4.7 and s["aesthetics"] >= 4.7 for s in scores]))


def test_the_scene_travels_in_the_pixels_and_only_losslessly():
    img = backend("t2i").generate([T2IRequest("S1.n00", PROMPT, 1, 192, 128)])[0].image
    scene = tag.read(img)
    assert [o["name"] for o in scene["state"]["objects"]] == ["apple", "mug", "vase"]
    assert tag.read(decode(encode(img, "png"), 10**7)) == scene  # survives a lossless round trip
    assert tag.read(np.ascontiguousarray(img[:, ::-1])) is None  # a mirrored (any transformed) image: untagged
    photo = np.random.default_rng(0).integers(0, 256, (128, 192, 3), np.uint8)
    assert tag.read(photo) is None


def test_the_validator_judges_the_images_and_instruction_it_is_handed(edits):
    judge = backend("validator")
    right = _pass_rate(judge, edits)
    # every candidate handed the edited image of another instruction on the same source
    other = [edits[n - n % 15 + (n % 15 + 5) % 15] for n in range(len(edits))]
    wrong_image = _pass_rate(judge, [(s, i, o2) for (s, i, _), (_, _, o2) in zip(edits, other)])
    swapped = _pass_rate(judge, [(o, i, s) for s, i, o in edits])
    other_instruction = _pass_rate(judge, [(s, INSTR[(INSTR.index(i) + 1) % 3], o) for s, i, o in edits])
    assert right > 0.08, right  # the world's editor succeeds now and then
    for name, rate in {"wrong image": wrong_image, "swapped": swapped, "other instruction": other_instruction}.items():
        assert rate < 0.25 * right, (name, rate, right)


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
