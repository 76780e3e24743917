"""ImgEdit-Judge: a Qwen2.5-VL-7B fine-tuned by the ImgEdit authors to rate edits (PKU-YuanGroup/ImgEdit,
README "Setups for ImgEdit-Judge", commit 547185d12c08267a862b94248576e1746e479937, 2025-09-07; paper
arXiv 2505.20275). No licence file in the repository at that commit: our prompt
(prompts/judges/imgedit_judge.md) is written in our own words and keeps only the published answer
format, which the parser must read.

Published usage: one user turn with the prompt text FIRST, then the original and the edited image;
the stock Qwen2.5-VL chat template; `max_new_tokens=2048` (the answer is ~40 tokens; we allow 128);
the processor at min_pixels 1016064 / max_pixels 1354752 (set them in the backend's options).

Answer (Benchmark/Basic/prompts.json, "Example Response Format"):

    Brief reasoning: <no more than 20 words>
    Prompt Compliance: <1-5>
    Visual Naturalness: <1-5>
    Physical & Detail Integrity: <1-5>

Other categories of the published prompts name the axes differently; those names are read too, by
position in the table below. ImgEdit's own reader (Benchmark/Basic/step1_get_avgscore.py) averages
every "Name: digits" line; ours reads the three axes by name.

Scale: 1-5 integers on each axis. adherence = compliance; aesthetics = the mean of the other two.
The published rubric caps the second and third score at the first, so a judge following it gives a
failed edit low aesthetics too; the validator needs both axes anyway.
"""

from __future__ import annotations

import re

from nhr_ray.judges.profiles import JudgeProfile, check_answer_count, clamp_ours
from nhr_ray.parsing import Parsed
from nhr_ray.prompts import render
from nhr_ray.roles import VLMRequest

MAX_CHARS = 20_000  # an answer longer than this is read only this far
# axis name (lower case, single spaces) -> 0 compliance, 1 naturalness, 2 physical integrity
AXES = {
    **dict.fromkeys(["prompt compliance", "instruction compliance", "style fidelity", "action fidelity",
                     "action / expression fidelity", "object identity"], 0),
    **dict.fromkeys(["visual naturalness", "visual seamlessness", "visual naturalness (seamlessness)",
                     "visual seamlessness (edge & texture blend)", "content preservation", "identity preservation",
                     "mask precision"], 1),
    **dict.fromkeys(["physical & detail integrity", "physical & detail coherence", "physical & detail fidelity",
                     "physical consistency", "physical consistency & fine detail", "rendering quality",
                     "visual & anatomical coherence", "visual quality",
                     "physical consistency (lighting, perspective, depth)"], 2),
}  # fmt: skip
LABELS = ("Prompt Compliance", "Visual Naturalness", "Physical & Detail Integrity")
_LINE = re.compile(r"^[\s*_#>-]*([A-Za-z][^:\n]*?)[\s*_]*[:\uff1a][\s*_]*(\S*)", re.M)
_NUMBER = re.compile(r"^([+-]?\d+(?:\.\d+)?)\.?(?:/5)?[*_.,;]*$")


def read_axes(text: str | None) -> Parsed:
    """The three 1-5 scores by axis, or a named reason."""
    if text is None or not text.strip():
        return Parsed(reason="empty")
    found: dict[int, float] = {}
    for m in _LINE.finditer(text[:MAX_CHARS]):
        slot = AXES.get(" ".join(m.group(1).lower().split()))
        if slot is None:
            continue
        num = _NUMBER.match(m.group(2))
        if num is None:
            return Parsed(reason="non_numeric_score")
        value = float(num.group(1))
        if not 1.0 <= value <= 5.0:
            return Parsed(reason="out_of_range_score")
        if slot in found and found[slot] != value:
            return Parsed(reason="conflicting_fields")
        found[slot] = value
    if len(found) < 3:
        return Parsed(reason="missing_field" if found else "unparseable_answer")
    return Parsed([found[0], found[1], found[2]])


class ImgEditJudgeProfile(JudgeProfile):
    name = "imgedit-judge"
    summary = "ImgEdit-Judge (Qwen2.5-VL-7B): text then images; 'Name: N' lines, three 1-5 axes"
    max_tokens = 128

    def requests(self, item_id, instruction, before, after) -> list[VLMRequest]:
        prompt = render("judges/imgedit_judge", self.prompt_dir, instruction=instruction)
        return [VLMRequest(item_id, "edit_scores", prompt, [before, after], None, layout=[prompt, 0, 1],
                           max_tokens=self.max_tokens)]  # fmt: skip

    def parse(self, texts) -> Parsed:
        bad = check_answer_count(texts, 1)
        if bad:
            return bad
        p = read_axes(texts[0])
        if not p.ok:
            return p
        compliance, natural, physical = p.value
        return Parsed({"adherence": compliance, "aesthetics": (natural + physical) / 2})

    def answers(self, adherence: float, aesthetics: float) -> list[str]:
        compliance = round(clamp_ours(adherence))
        quality = min(round(clamp_ours(aesthetics)), compliance)  # the rubric's cap
        lines = ["Brief reasoning: scored from human ratings.", *(f"{k}: {v}" for k, v in zip(LABELS, (compliance, quality, quality)))]
        return ["\n".join(lines)]
