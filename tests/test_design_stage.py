import json

from nhr_ray.config import load_config
from nhr_ray.stages.design import classify_instruction, infer_style, parse_scenes

TASK = load_config(overrides=["task.items_per_request=4"]).task


def _parse(text, error=None):
    scenes, tally = parse_scenes(text, error, 3, TASK)
    assert tally.balanced() and tally.n_in == 4
    return scenes, tally


def test_good_answer_with_prose_and_fences():
    items = [{"prompt": f"A photo of a desk {i}.", "edits": ["Remove the mug on the left."]} for i in range(4)]
    scenes, t = _parse("Here you go:\n```json\n" + json.dumps(items) + "\n```\nEnjoy!")
    assert len(scenes) == 4 and t.kept == 4
    assert scenes[0].scene_id == "S0003000" and scenes[3].scene_id == "S0003003"
    assert scenes[0].instructions[0].category == "removal" and scenes[0].style == "photograph"


def test_braces_quotes_newlines_survive():
    edit = 'Add a sign that reads "{OPEN}" on the\nleft wall'
    items = [{"prompt": "A shop.", "edits": [edit]}] * 4
    scenes, t = _parse(json.dumps(items))
    assert scenes[0].instructions[0].text == 'Add a sign that reads "{OPEN}" on the left wall'
    assert t.notes["instruction_whitespace_repaired"] == 4


def test_bad_items_are_dropped_with_reasons_and_repairs_counted():
    items = [
        {"prompt": "A park.", "edits": "Remove the bench."},  # string -> wrapped (repair)
        {"prompt": "A park."},  # no edits
        {"edits": ["Remove x"]},  # no prompt
        "just a string",
        {"prompt": "An extra item beyond the count", "edits": ["x"]},
    ]
    scenes, t = _parse(json.dumps(items))
    assert len(scenes) == 1 and scenes[0].instructions[0].text == "Remove the bench."
    assert t.dropped == {"missing_edits": 1, "missing_prompt": 1, "item_not_an_object": 1}
    assert t.notes["edits_string_wrapped"] == 1 and t.notes["extra_items_ignored"] == 1


def test_whole_answer_failures():
    for text, reason in [("I cannot do that.", "response_no_json"), ('[{"prompt": "a", "edi', "response_truncated_json"),
                         ("", "response_empty")]:
        scenes, t = _parse(text)
        assert scenes == [] and t.dropped == {reason: 4}
    scenes, t = _parse(None, error="rate_limited_exhausted")
    assert t.failed == {"error:rate_limited_exhausted": 4}


def test_missing_items_counted():
    scenes, t = _parse(json.dumps([{"prompt": "A.", "edits": ["Remove the cat."]}]))
    assert len(scenes) == 1 and t.dropped == {"missing_items": 3}


def test_categories_and_styles():
    assert classify_instruction("Remove all the objects.") == "removal"
    assert classify_instruction("Replace the red mug with a blue vase") == "replacement"
    assert classify_instruction("Make the umbrella on the right bright yellow") == "colour_change"
    assert classify_instruction("Turn the whole picture into a watercolour painting") == "style"
    assert classify_instruction("Place a red apple at the centre of the table") == "addition"
    assert classify_instruction("Make it nicer") == "other"
    assert infer_style("A pixel art picture of a street") == "pixel art"
    assert infer_style("Something") == "unspecified"
