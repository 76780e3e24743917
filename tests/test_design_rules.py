"""The design prompt's rules checked on the designer's answer: each violation counted by rule, then
repaired or dropped as the rule allows (stages/design_rules.py)."""

import json

import pytest

from nhr_ray.config import load_config
from nhr_ray.stages.design import parse_scenes

REMOVAL = load_config(overrides=["task.items_per_request=1", "task.operation=removal"]).task
MIXED = load_config(overrides=["task.items_per_request=1", "task.operation=mixed"]).task
ALL = "Remove all of them at once."


def _run(edits, task=REMOVAL):
    """edits: labelled 'removal' unless given as {"instruction", "category"}."""
    edits = [e if isinstance(e, dict) else {"instruction": e, "category": "removal"} for e in edits]
    scenes, tally = parse_scenes(json.dumps([{"prompt": "A desk by a window.", "edits": edits}]), None, 0, task)
    assert tally.balanced()
    rules = {k.removeprefix("rule_violation:"): n for k, n in tally.notes.items() if k.startswith("rule_violation:")}
    return ([i.text for i in scenes[0].instructions] if scenes else None), rules, tally


def test_a_good_answer_has_no_violation():
    texts, rules, _ = _run(["Remove the mug on the left.", "Lose the lamp on the right.", ALL])
    assert texts == ["Remove the mug on the left.", "Lose the lamp on the right.", ALL] and rules == {}


@pytest.mark.parametrize("edits, kept, rule", [
    # removal only: a recolour or a swap in a removal scene is dropped
    (["Remove the mug on the left.", {"instruction": "Make the lamp on the right red.", "category": "colour_change"},
      "Remove the book in the centre.", ALL],
     ["Remove the mug on the left.", "Remove the book in the centre.", ALL], {"removal_only": 1}),
    # one deletion per object: the second line on the same mug is dropped
    (["Remove the mug on the left.", "Erase the blue mug on the left.", "Remove the lamp.", ALL],
     ["Remove the mug on the left.", "Remove the lamp.", ALL], {"one_per_object": 1}),
    # 1-5 objects: lines past the fifth object are dropped
    ([f"Remove the {o}." for o in ("mug", "lamp", "book", "pen", "vase", "clock", "plant")] + [ALL],
     [f"Remove the {o}." for o in ("mug", "lamp", "book", "pen", "vase")] + [ALL], {"at_most_5_objects": 2}),
    # the composite line last: moved to the end
    ([ALL, "Remove the mug.", "Remove the lamp."], ["Remove the mug.", "Remove the lamp.", ALL], {"composite_not_last": 1}),
    # one composite line: the earlier one is dropped
    (["Remove the mug.", "Remove everything on the desk.", "Remove the lamp.", ALL],
     ["Remove the mug.", "Remove the lamp.", ALL], {"extra_composite": 1, "composite_not_last": 0}),
    # a composite line in a one-object scene repeats the one deletion: dropped
    (["Remove the mug.", ALL], ["Remove the mug."], {"composite_with_one_object": 1}),
    # no composite line with 2+ objects: counted, the scene kept as it is
    (["Remove the mug.", "Remove the lamp."], ["Remove the mug.", "Remove the lamp."], {"composite_missing": 1}),
])  # fmt: skip
def test_each_rule_is_counted_and_repaired(edits, kept, rule):
    texts, rules, _ = _run(edits)
    assert texts == kept
    assert rules == {k: v for k, v in rule.items() if v}


def test_a_scene_left_without_a_removal_is_dropped():
    texts, rules, tally = _run([{"instruction": "Make the mug red.", "category": "colour_change"},
                                {"instruction": "Add a cat on the left.", "category": "addition"}])  # fmt: skip
    assert texts is None and tally.dropped == {"no_edit_left_by_rules": 1} and rules == {"removal_only": 2}


def test_mixed_scenes_keep_one_instruction_per_object():
    edits = [("Make the mug on the left red.", "colour_change"), ("Remove the red mug on the left.", "removal"),
             ("Add a cat on the sofa.", "addition"), ("Turn the whole picture into a watercolour painting.", "style")]
    texts, rules, _ = _run([{"instruction": t, "category": c} for t, c in edits], MIXED)
    assert texts == ["Make the mug on the left red.", "Add a cat on the sofa.", "Turn the whole picture into a watercolour painting."]
    assert rules == {"one_per_object": 1}
