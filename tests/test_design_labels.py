"""The designer labels each instruction's category in its JSON; the regular expressions are only a
counted fallback. The simulated designer writes casual phrasings and labels them, from the prompt
text it is handed."""

import json

from nhr_ray.backends.sim import world as W
from nhr_ray.config import load_config
from nhr_ray.parsing import extract_json
from nhr_ray.prompts import render
from nhr_ray.roles import BackendContext, TextRequest, build_backend
from nhr_ray.stages.design import classify_instruction, parse_scenes

TASK = load_config(overrides=["task.items_per_request=1"]).task
CASUAL = [("No remote control, thanks.", "removal"), ("Lose the crocheted blanket.", "removal"),
          ("Let's have the kettle in teal.", "colour_change"), ("Swap the lamp for a cactus.", "replacement")]  # fmt: skip


def _scene(edits):
    scenes, tally = parse_scenes(json.dumps([{"prompt": "A cosy living room.", "edits": edits}]), None, 0, TASK)
    assert tally.balanced()
    return scenes, tally


def test_casual_phrasings_get_their_category_from_the_label():
    assert classify_instruction("No remote control, thanks.") == "other"  # what the regexes alone say
    assert classify_instruction("Lose the crocheted blanket.") == "other"
    scenes, tally = _scene([{"instruction": t, "category": c} for t, c in CASUAL])
    assert [(i.text, i.category) for i in scenes[0].instructions] == CASUAL
    assert tally.notes["category_labelled"] == 4 and not any(k.startswith("category_fallback") for k in tally.notes)


def test_label_spellings_are_normalised():
    scenes, _ = _scene([{"instruction": "Lose the crocheted blanket.", "category": " Removal "},
                        {"instruction": "Let's have the kettle in teal.", "category": "color-change"}])  # fmt: skip
    assert [i.category for i in scenes[0].instructions] == ["removal", "colour_change"]


def test_missing_or_unknown_label_falls_back_to_the_regexes_counted():
    scenes, tally = _scene(["Remove the mug on the left.", {"instruction": "Lose the crocheted blanket."},
                            {"instruction": "Add a red kite near the top.", "category": "kite stuff"},
                            {"instruction": "No remote control, thanks.", "category": 7}])  # fmt: skip
    assert [i.category for i in scenes[0].instructions] == ["removal", "other", "addition", "other"]
    assert tally.notes["category_fallback:missing_label"] == 2
    assert tally.notes["category_fallback:unknown_label"] == 2
    assert "category_labelled" not in tally.notes


def _designer(operation, prompt):
    cfg = load_config(overrides=["sim.malformed_rate=0"])
    d = build_backend("designer", "sim", {}, BackendContext("designer", 0, 0, cfg.sim, run_config=cfg))
    return extract_json(d.complete([TextRequest("D0007", f"design:{operation}", prompt)])[0].text, list).value


def test_sim_designer_writes_casual_labelled_phrasings_from_the_real_prompt():
    prompt = render("design_removal", task_description="kitchens", count=20)
    items = _designer("removal", prompt)
    edits = [e for it in items for e in it["edits"]]
    assert all(isinstance(e, dict) and e["category"] == "removal" for e in edits)
    casual = [e["instruction"] for e in edits if not e["instruction"].startswith("Remove")]
    assert len(casual) >= 5 and any(t.startswith("No ") and t.endswith(", thanks.") for t in casual)
    assert all(W.parse_instruction(t)[0] == "removal" for t in casual)  # the simulated editor reads them
    scenes, tally = parse_scenes(json.dumps(items), None, 0, TASK.model_copy(update={"items_per_request": 20, "operation": "removal"}))
    assert all(i.category == "removal" for s in scenes for i in s.instructions)
    assert tally.notes["category_labelled"] == len(edits)


def test_sim_designer_labels_only_when_the_prompt_asks():
    items = _designer("mixed", "Write exactly 5 items.")
    assert all(isinstance(e, str) for it in items for e in it["edits"])
