"""The removal and mixed design prompts carry SPEC A.1's requirements (checked by key phrases, so
deleting a requirement fails this test), and every design prompt asks for category labels."""

import re

import pytest

from nhr_ray.prompts import prompts_dir, render

COMMON = {
    "no tools": r"do not\s+browse, search or call tools",
    "1-5 objects, balanced": r"between 1 and 5 clearly visible.*?about (the same number|as many) .*?1, 2, 3, 4 and 5",
    "spatial cues, not ordinals": r"never by counting",
    "tricky spatial cues": r"spatial cue a little tricky",
    "sensory wording": r"sensory wording",
    "white background warning": r"plain white or empty studio\s+background",
    "font warning": r"never ask for\s+a particular font",
    "at most 7 focal subjects": r"Never more than 7 focal subjects",
    "labels": r'"category"',
    "JSON only": r"and nothing else",
}
REMOVAL = {
    "removal only": r"Removal only.*?Never ask to recolour, swap,\s+replace, move, resize",
    "one deletion per object": r"Exactly one removal instruction per named object",
    "independent": r"make sense on its own",
    "casual but unambiguous": r"Casual wording is fine.*?unambiguous",
    "composite line last": r"removes\s+all of them at once\. It comes last",
    "everyday and unusual objects": r"Mix everyday and unusual objects",
}
MIXED = {
    "casual phrasing": r"casual asides",
    "exotic phrasing": r"exotic request",
    "exotic objects": r"mix everyday and exotic objects",
    "one per object": r"At most one instruction per named object",
    "category list": r'"removal", "addition", "colour_change",\s+"replacement", "style"',
}


@pytest.mark.parametrize("name, required", [("design_removal", {**COMMON, **REMOVAL}), ("design_mixed", {**COMMON, **MIXED})])
def test_design_prompt_has_every_requirement(name, required):
    text = render(name, task_description="T", count=3)
    missing = [k for k, rx in required.items() if not re.search(rx, text, re.S | re.I)]
    assert not missing, f"{name} misses: {missing}"


def test_every_design_prompt_asks_for_labels():
    for path in sorted(prompts_dir().glob("design_*.md")):
        assert '"category"' in path.read_text() and '"instruction"' in path.read_text(), path.name
