"""Our scoring prompt (prompts/edit_scores.md, in our own words after SPEC.md's description of the
paper's): the original and the edited image, then the prompt; the answer is one JSON object with two
floats in 1.0-5.0, on our scale already.

`nhr` asks for {"adherence", "aesthetics"}. `nhr-paper-keys` asks for the keys of the paper's
scoring prompt, {"InstructionAdherence", "ImageAesthetic"}: a validator fine-tuned on the paper's
format answers that way. Both parsers read either spelling (parsing.parse_scores), so a judge that
answers in the other one is never rejected for it; a judge that gives both spellings with two
different values is (`conflicting_fields`).
"""

from __future__ import annotations

import json

from nhr_ray.judges.profiles import JudgeProfile, check_answer_count, clamp_ours
from nhr_ray.parsing import SCORES_SCHEMA, Parsed, parse_scores
from nhr_ray.prompts import render
from nhr_ray.roles import VLMRequest

PAPER_KEYS = ("InstructionAdherence", "ImageAesthetic")


def _schema(adh_key: str, aes_key: str) -> dict:
    props = SCORES_SCHEMA["properties"]
    return {**SCORES_SCHEMA, "properties": {adh_key: props["adherence"], aes_key: props["aesthetics"]},
            "required": [adh_key, aes_key]}  # fmt: skip


class NHRProfile(JudgeProfile):
    name = "nhr"
    summary = 'our prompt; JSON {"adherence", "aesthetics"} in 1.0-5.0 (the paper\'s keys are read too)'
    sim_speaks_it = True
    keys: tuple[str, str] = ("adherence", "aesthetics")

    def requests(self, item_id, instruction, before, after) -> list[VLMRequest]:
        adh, aes = self.keys
        prompt = render("edit_scores", self.prompt_dir, instruction=instruction, adherence_key=adh, aesthetics_key=aes)
        return [VLMRequest(item_id, "edit_scores", prompt, [before, after], _schema(adh, aes))]

    def parse(self, texts) -> Parsed:
        bad = check_answer_count(texts, 1)
        return bad or parse_scores(texts[0])

    def answers(self, adherence: float, aesthetics: float) -> list[str]:
        adh, aes = self.keys
        return [json.dumps({adh: round(clamp_ours(adherence), 2), aes: round(clamp_ours(aesthetics), 2)})]


class NHRPaperKeysProfile(NHRProfile):
    name = "nhr-paper-keys"
    summary = 'our prompt asking for the paper\'s keys: JSON {"InstructionAdherence", "ImageAesthetic"}'
    keys = PAPER_KEYS
