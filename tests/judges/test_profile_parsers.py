"""Judge profiles read their judge's published answer format, map it onto our 1-5 scale, and turn any
other text into a named reason without raising."""

import json
import random

import numpy as np
import pytest

from nhr_ray.judges import get_profile, profile_names
from nhr_ray.judges.imgedit import read_axes

IMG = np.zeros((8, 8, 3), np.uint8)

# ImgEdit's own recorded judge outputs (PKU-YuanGroup/ImgEdit, Benchmark/Basic/basic_bench_readme.md,
# commit 547185d): "Name: N" lines after a "Brief reasoning:" line, axis names varying by category
IMGEDIT_RECORDED = [
    ("Brief reasoning: No texture change applied; shell remains textured; tortoise geometry unchanged.\n"
     "Prompt Compliance: 1\nVisual Seamlessness: 1\nPhysical & Detail Fidelity: 1", (1.0, 1.0)),
    ("Brief reasoning: No fur change; wrong subject; mainly butterfly retained with minor color alteration.\n"
     "Prompt Compliance: 1\nVisual Seamlessness: 4\nPhysical & Detail Fidelity: 4", (1.0, 4.0)),
    ("Brief reasoning: Style transfer absent, with excellent content preservation and rendering quality maintaining "
     "original image's fidelity.\nStyle Fidelity: 1\nContent Preservation: 5\nRendering Quality: 5", (1.0, 5.0)),
]  # fmt: skip


@pytest.mark.parametrize(
    "text, scores",
    [
        ('{"adherence": 4.8, "aesthetics": 4.9}', (4.8, 4.9)),
        ('{"InstructionAdherence": 4.8, "ImageAesthetic": 4.6}', (4.8, 4.6)),  # the paper's scoring prompt's keys
        ('```json\n{"InstructionAdherence": "4.75", "ImageAesthetic": 5}\n```', (4.75, 5.0)),
        ('{"instruction_adherence": 3.1, "image aesthetic": 2.0}', (3.1, 2.0)),
        ('{"adherence": 4.2, "InstructionAdherence": 4.2, "aesthetics": 4.0}', (4.2, 4.0)),  # both spellings, agreeing
    ],
)
@pytest.mark.parametrize("name", ["nhr", "nhr-paper-keys"])
def test_nhr_profiles_read_both_spellings(name, text, scores):
    p = get_profile(name).parse([text])
    assert p.ok and (p.value["adherence"], p.value["aesthetics"]) == pytest.approx(scores)


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"adherence": 4.2, "InstructionAdherence": 2.0, "aesthetics": 4.0}', "conflicting_fields"),
        ('{"InstructionAdherence": 4.8}', "missing_field"),
        ('{"InstructionAdherence": 9, "ImageAesthetic": 4.6}', "out_of_range_score"),
        ('{"InstructionAdherence": "high", "ImageAesthetic": 4.6}', "non_numeric_score"),
        ("InstructionAdherence: 4.8, ImageAesthetic: 4.6", "no_json"),
    ],
)
def test_nhr_hostile_answers_are_named(text, reason):
    assert get_profile("nhr-paper-keys").parse([text]).reason == reason


def test_paper_keys_profile_asks_for_the_paper_keys_and_constrains_them():
    [req] = get_profile("nhr-paper-keys").requests("a1", "Remove the cup", IMG, IMG)
    assert '{"InstructionAdherence": <float>, "ImageAesthetic": <float>}' in req.prompt and "Remove the cup" in req.prompt
    assert req.json_schema["required"] == ["InstructionAdherence", "ImageAesthetic"]
    [ours] = get_profile("nhr").requests("a1", "Remove the cup", IMG, IMG)
    assert '{"adherence": <float>, "aesthetics": <float>}' in ours.prompt and ours.json_schema["required"] == ["adherence", "aesthetics"]


@pytest.mark.parametrize("text, scores", IMGEDIT_RECORDED)
def test_imgedit_reads_its_recorded_outputs(text, scores):
    p = get_profile("imgedit-judge").parse([text])
    assert p.ok and (p.value["adherence"], p.value["aesthetics"]) == scores


def test_imgedit_format_variants_and_the_mean_of_the_quality_axes():
    text = "Brief reasoning: cup gone, faint smear.\n**Prompt Compliance:** 5\n- Visual Naturalness: 4/5\nPhysical & Detail Integrity: 3."
    p = get_profile("imgedit-judge").parse([text])
    assert p.ok and p.value == {"adherence": 5.0, "aesthetics": 3.5}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        # ImgEdit's UGE suite answers with one overall score: not this judge's format
        ("Brief reasoning: Instructions partially followed. Heavy alterations led to image distortion. Score: 2.", "unparseable_answer"),
        ("Prompt Compliance: 4\nVisual Naturalness: 4", "missing_field"),
        ("Prompt Compliance: A number from 1 to 5.\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4", "non_numeric_score"),
        ("Prompt Compliance: 7\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4", "out_of_range_score"),
        ("Prompt Compliance: 0\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4", "out_of_range_score"),
        ("Prompt Compliance: 4\nPrompt Compliance: 2\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4", "conflicting_fields"),
        ("Prompt Compliance: four\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4", "non_numeric_score"),
    ],
)
def test_imgedit_hostile_answers_are_named(text, reason):
    assert get_profile("imgedit-judge").parse([text]).reason == reason


def _es(score, reasoning="The background is now a glass wall; the person is untouched."):
    # the layout EditScore's prompt shows: keys with a space before the colon, one per line
    return '{\n"reasoning" : "' + reasoning + '",\n"score" : ' + json.dumps(score) + "\n}"


@pytest.mark.parametrize(
    "sc, pq, scores",
    [
        (_es([25, 20]), _es([22, 24]), (1 + 4 * 20 / 25, 1 + 4 * 22 / 25)),  # min of each list, 0-25 -> 1-5
        ("```json\n" + _es([0, 10]) + "\n```", _es([25.0, 25.0]), (1.0, 5.0)),
        (_es([12.5, 13]), _es([5, 5]), (3.0, 1.8)),
    ],
)
def test_editscore_reads_its_format(sc, pq, scores):
    p = get_profile("editscore").parse([sc, pq])
    assert p.ok and (p.value["adherence"], p.value["aesthetics"]) == pytest.approx(scores)


@pytest.mark.parametrize(
    "sc, pq, reason",
    [
        (_es([20, 20]), None, "empty"),
        (_es([26, 20]), _es([20, 20]), "out_of_range_score"),
        (_es([-1, 20]), _es([20, 20]), "out_of_range_score"),
        (_es([20]), _es([20, 20]), "wrong_score_count"),
        (_es([20, 20, 20]), _es([20, 20]), "wrong_score_count"),
        (_es(["high", 20]), _es([20, 20]), "non_numeric_score"),
        (_es([True, 20]), _es([20, 20]), "non_numeric_score"),
        ('{"reasoning": "fine"}', _es([20, 20]), "missing_field"),
        (_es([20, 20]), _es(20), "wrong_score_count"),
        # an unescaped quote inside the reasoning: EditScore repairs it, we count it
        (_es([20, 20], reasoning='the "glass" wall'), _es([20, 20]), "no_json"),
        ('{"reasoning": "cut off", "score": [2', _es([20, 20]), "truncated_json"),
    ],
)
def test_editscore_hostile_answers_are_named_never_a_made_up_score(sc, pq, reason):
    assert get_profile("editscore").parse([sc, pq]).reason == reason


@pytest.mark.parametrize("name", profile_names())
def test_wrong_number_of_answers_is_named(name):
    assert get_profile(name).parse([]).reason == "missing_answer"
    assert get_profile(name).parse(["x"] * 3).reason == "missing_answer"


@pytest.mark.parametrize("name", profile_names())
def test_answers_written_for_scores_read_back_as_those_scores(name):
    p = get_profile(name)
    for adh, aes in [(1.0, 1.0), (4.8, 4.9), (3.3, 2.6), (5.0, 4.2)]:
        got = p.parse(p.answers(adh, aes))
        assert got.ok, got
        tol = {"imgedit-judge": 0.5 + 1e-9, "editscore": 0.08 + 1e-9}.get(name, 1e-9)  # integer scales quantise
        assert abs(got.value["adherence"] - adh) <= tol
        # ImgEdit's rubric caps the quality axes at compliance
        want_aes = min(aes, round(adh)) if name == "imgedit-judge" else aes
        assert abs(got.value["aesthetics"] - want_aes) <= tol


@pytest.mark.parametrize("name", profile_names())
def test_parsers_never_raise_on_random_text(name):
    p = get_profile(name)
    n = len(p.requests("x", "i", IMG, IMG))
    rng = random.Random(7)
    pieces = ['{', '}', '[', ']', '"score"', '"adherence"', '"InstructionAdherence"', ':', ',', '1e309', 'NaN', '-0',
              '4.9', '25', 'Prompt Compliance', 'Visual Naturalness: ', '\n', '```json', '\x00', '\u00e9\u4e2d', ' ' * 5]  # fmt: skip
    for _ in range(400):
        texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(n)]
        r = p.parse(texts)
        assert r.ok or (isinstance(r.reason, str) and r.reason.replace("_", "").isalpha())
        if r.ok:
            assert all(1.0 <= r.value[k] <= 5.0 for k in ("adherence", "aesthetics"))
    assert read_axes("Prompt Compliance: 5\n" * 100_000).reason == "missing_field"  # long text, bounded work


def test_unknown_profile_is_an_error_naming_the_known_ones():
    from nhr_ray.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"unknown judge profile 'imgedit'; known: \['nhr', 'nhr-paper-keys', 'imgedit-judge', 'editscore'\]"):
        load_config(None, overrides=["judging.validation.profile=imgedit"])
    with pytest.raises(ConfigError, match="judging.prefilter.profile: 'editscore' needs a real judge model"):
        load_config(None, overrides=["judging.prefilter.profile=editscore"])
    with pytest.raises(ConfigError, match="profle"):
        load_config(None, overrides=["judging.validation.profle=nhr"])
    cfg = load_config(None, overrides=["judging.validation.profile=nhr-paper-keys"])
    assert cfg.judging.for_stage("consistency").profile == "nhr-paper-keys"  # consistency follows validation
