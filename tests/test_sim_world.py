"""The simulation world: real pixels, deterministic by id, judges in real answer formats."""

import numpy as np

from nhr_ray.backends.sim import render as R
from nhr_ray.backends.sim import tag
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.text import invert_instruction
from nhr_ray.config import load_config
from nhr_ray.parsing import extract_json, parse_scores, parse_yes_no
from nhr_ray.roles import BackendContext, EditRequest, T2IRequest, TextRequest, VLMRequest, build_backend

PROMPT = ("A photograph of a wooden table, seen at eye level. In the scene there is a large red apple on the left "
          "and a medium blue mug on the right. Soft morning light, calm mood.")


def backend(role, **sim):
    cfg = load_config(overrides=[f"sim.{k}={v}" for k, v in sim.items()])
    return build_backend(role, "sim", {}, BackendContext(role, 0, 1.0, cfg.sim, run_config=cfg))


def test_t2i_draws_objects_and_is_deterministic():
    t2i = backend("t2i", missing_object_rate=0.0, implausible_rate=0.0)
    a, b = t2i.generate([T2IRequest("S1.n0", PROMPT, 1, 192, 128), T2IRequest("S1.n0", PROMPT, 1, 192, 128)])
    assert a.image.shape == (128, 192, 3) and np.array_equal(a.image, b.image)
    assert [o["name"] for o in tag.read(a.image)["state"]["objects"]] == ["apple", "mug"]  # the scene, in its pixels
    # the apple is red where the world says it is
    y, x = int(0.55 * 128), int(0.2 * 192)
    assert tuple(a.image[y, x]) == W.COLOURS["red"] or a.image[y, x, 0] > 150
    assert a.gpu_seconds > 0.5  # full-size cost of a 4-step FLUX-schnell image (SPEC.md)


def test_missing_objects_are_not_drawn():
    t2i = backend("t2i", missing_object_rate=1.0, implausible_rate=0.0)
    a = t2i.generate([T2IRequest("S1.n0", PROMPT, 1, 192, 128)])[0]
    scene = tag.read(a.image)
    assert not any(o["present"] for o in scene["state"]["objects"])
    empty = R.scene_state(PROMPT, 192, 128)
    empty["objects"] = []
    assert (np.abs(a.image.astype(int) - R.render(empty, scene["texture_seed"])) <= 1).all()  # background only (+ the tag)


def test_clean_removal_changes_only_the_target():
    state = R.scene_state(PROMPT, 192, 128)
    src = R.render(state, 5)
    parsed = W.parse_instruction("Remove the red apple on the left.")
    target = R.find_target(state, parsed[0], parsed[1])
    assert target == 0
    out, drawn = R.render_outcome(state, parsed, target, "clean", 5, 0, "S1.n0.i0.m0")
    assert [o["present"] for o in drawn["objects"]] == [False, True]
    diff = np.abs(out.astype(int) - src.astype(int)).max(axis=2) > 40
    x0, y0, x1, y1 = R.object_box(state, state["objects"][0])
    assert diff.sum() > 100 and diff[y0:y1, x0:x1].sum() == diff.sum()


def test_editor_outcomes_follow_the_world():
    ed = backend("editor")
    state = R.scene_state(PROMPT, 192, 128)
    img = tag.write(R.render(state, 5), {"state": state, "texture_seed": 5})
    reqs = [EditRequest(f"S1.n0.i0.m{m}", img, "Remove the red apple on the left.", m) for m in range(5)]
    outs = ed.edit(reqs)
    again = ed.edit(reqs)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(outs, again))
    assert all(tag.read(o.image) is not None for o in outs if o.image.shape == img.shape)  # the edit's scene, in its pixels
    assert all(18 * 0.376 * 0.5 < o.gpu_seconds < 30 for o in outs)


def test_judges_answer_in_parseable_formats_and_sometimes_not():
    judge = backend("prefilter", malformed_rate=0.2)
    img = np.zeros((32, 32, 3), np.uint8)
    reqs = [VLMRequest(f"a{i}", q, "Instruction: Remove the red apple on the left.", [img, img])
            for i in range(200) for q in ("edit_scores", "unwanted_change")]
    answers = judge.ask(reqs)
    parsed = [parse_scores(a.text) if r.question == "edit_scores" else parse_yes_no(a.text) for r, a in zip(reqs, answers)]
    bad = sum(not p.ok for p in parsed)
    assert 40 < bad < 120  # ~20 % malformed, every one caught by the parsers
    good_scores = [p.value for r, p in zip(reqs, parsed) if p.ok and r.question == "edit_scores"]
    assert all(1.0 <= s["adherence"] <= 5.0 for s in good_scores)


def test_designer_writes_balanced_json_scenes():
    cfg = load_config(overrides=["sim.malformed_rate=0"])
    d = build_backend("designer", "sim", {}, BackendContext("designer", 0, 0, cfg.sim, run_config=cfg))
    ans = d.complete([TextRequest("D0000", "design:removal", "Write exactly 10 items.")])[0]
    items = extract_json(ans.text, list).value
    assert len(items) == 10
    counts = sorted(len(W.parse_objects(i["prompt"])) for i in items)
    assert counts == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    for it in items:
        n = len(W.parse_objects(it["prompt"]))
        assert len(it["edits"]) == n + (1 if n >= 2 else 0)  # one removal per object, then "remove all"


def test_inverse_instructions_name_what_changed_without_forbidden_words():
    assert invert_instruction(PROMPT, "Remove the red apple on the left.") == "Place a large red apple on the left."
    assert invert_instruction(PROMPT, "Make the mug on the right green.") == "Make the mug on the right blue."
    inv = invert_instruction(PROMPT, "Replace the blue mug on the right with a red vase.")
    assert inv == "Replace the red vase on the right with a medium blue mug."
    for w in ("revert", "undo", "restore", "back"):
        assert w not in inv.lower()
