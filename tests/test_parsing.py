import pytest

from nhr_ray.parsing import extract_json, parse_scores, parse_yes_no
from nhr_ray.prompts import PROMPT_NAMES, render


@pytest.mark.parametrize("text, value", [("yes", True), ("Yes.", True), ("**No**", False), ("NO", False),
                                         ("no, the mug moved", False), ("`yes`", True)])
def test_yes_no(text, value):
    p = parse_yes_no(text)
    assert p.ok and p.value is value


@pytest.mark.parametrize("text, reason", [("", "empty"), (None, "empty"), ("Maybe.", "unparseable_answer"),
                                          ("I cannot tell", "unparseable_answer"), ("yesno", "unparseable_answer")])
def test_yes_no_never_silently_passes(text, reason):
    assert parse_yes_no(text).reason == reason


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"adherence": 4.8, "aesthetics": 4.9}', "ok"),
        ('Scores: ```json\n{"adherence": "4.8", "aesthetics": 5}\n```', "ok"),
        ('{"Adherence": 4.8, "AESTHETICS": 4.9}', "ok"),
        ('{"adherence": NaN, "aesthetics": 4.9}', "non_numeric_score"),
        ('{"adherence": Infinity, "aesthetics": 4.9}', "non_numeric_score"),
        ('{"adherence": "five", "aesthetics": 4.9}', "non_numeric_score"),
        ('{"adherence": true, "aesthetics": 4.9}', "non_numeric_score"),
        ('{"adherence": 7.5, "aesthetics": 4.9}', "out_of_range_score"),
        ('{"adherence": 0.5, "aesthetics": 4.9}', "out_of_range_score"),
        ('{"aesthetics": 4.9}', "missing_field"),
        ('{"adherence": 4.', "truncated_json"),
        ("The edit looks great.", "no_json"),
        ("", "empty"),
        ("[4.8, 4.9]", "no_json"),
    ],
)
def test_scores(text, reason):
    assert parse_scores(text).reason == reason


def test_extract_json_skips_prose_and_wrong_types():
    p = extract_json('Sure! {"note": 1} and then [{"prompt": "a", "edits": ["x"]}] done', list)
    assert p.ok and p.value == [{"prompt": "a", "edits": ["x"]}]


def test_prompts_insert_text_verbatim():
    nasty = 'Remove the {cup} "left" $HOME ${x} \\n end'
    keys = {"adherence_key": "adherence", "aesthetics_key": "aesthetics"}
    out = render("edit_scores", instruction=nasty, **keys)
    assert nasty in out
    out = render("inverse", prompt="{a} $b", instruction=nasty)
    assert "{a} $b" in out and nasty in out
    for name in PROMPT_NAMES:
        assert render(name, instruction="i", prompt="p", **keys) if name != "aesthetics" else render(name)
    with pytest.raises(KeyError):
        render("edit_scores", instruction="x", adherence_key="adherence")  # a missing value is an error, never an empty hole
