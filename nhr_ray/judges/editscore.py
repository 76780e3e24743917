"""EditScore: reward models for instruction-guided editing (VectorSpaceLab/EditScore, commit
6e0f1b9a73b40f227d82d9cb32bd9cfb7189739b, 2025-11-09, Apache-2.0; paper arXiv 2509.23909).
EditScore-7B is a LoRA adapter (hub: EditScore/EditScore-7B) on Qwen/Qwen2.5-VL-7B-Instruct: set
the backend's `model` to the base and `lora` to the adapter.

Two questions per edit, as `editscore/__init__.py` asks them, with its prompts verbatim
(prompts/judges/editscore_sc.md and editscore_pq.md, score range 25 as in its README):
  SC  both images: [editing success, degree of over-editing], each 0-25
  PQ  the edited image alone: [naturalness, artifacts], each 0-25
Its chat template (`mllm_tools/qwen25vl.py`): the default system turn, then "<img1>: " before the
first image and "<img2>: " before the second, then the prompt. Its sampling: 512 new tokens.

Answer: {"reasoning": "...", "score": [a, b]} (JSON). EditScore takes min(score) / 2.5 as a 0-10
score per question. Our scale: adherence = 1 + 4 * min(SC) / 25, aesthetics = 1 + 4 * min(PQ) / 25.
EditScore's own reader repairs broken JSON and falls back to the middle of the range when it still
cannot read an answer; here an unreadable answer is a counted rejection, never a made-up score.
"""

from __future__ import annotations

import json

from nhr_ray.judges.profiles import JudgeProfile, check_answer_count, clamp_ours
from nhr_ray.parsing import Parsed, extract_json
from nhr_ray.prompts import render
from nhr_ray.roles import VLMRequest

SCORE_RANGE = 25.0
MAX_TOKENS = 512


def read_score_list(text: str | None) -> Parsed:
    """min of the answer's two-number `score` list, or a named reason."""
    p = extract_json(text, dict)
    if not p.ok:
        return p
    scores = {str(k).strip().lower(): v for k, v in p.value.items()}.get("score")
    if scores is None:
        return Parsed(reason="missing_field")
    if not isinstance(scores, list) or len(scores) != 2:
        return Parsed(reason="wrong_score_count")
    values = []
    for v in scores:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
            return Parsed(reason="non_numeric_score")
        if not 0.0 <= v <= SCORE_RANGE:
            return Parsed(reason="out_of_range_score")
        values.append(float(v))
    return Parsed(min(values))


def to_ours(score: float) -> float:
    return 1.0 + 4.0 * score / SCORE_RANGE


def from_ours(x: float) -> int:
    return round((clamp_ours(x) - 1.0) / 4.0 * SCORE_RANGE)


class EditScoreProfile(JudgeProfile):
    name = "editscore"
    summary = "EditScore (Qwen2.5-VL + LoRA): two JSON answers, {reasoning, score: [a, b]} on 0-25"

    def requests(self, item_id, instruction, before, after) -> list[VLMRequest]:
        sc = render("judges/editscore_sc", self.prompt_dir, instruction=instruction)
        pq = render("judges/editscore_pq", self.prompt_dir)
        return [
            VLMRequest(item_id, "edit_scores", sc, [before, after], None, layout=["<img1>: ", 0, "<img2>: ", 1, sc],
                       max_tokens=MAX_TOKENS),
            VLMRequest(item_id, "edit_quality", pq, [after], None, layout=["<img1>: ", 0, pq], max_tokens=MAX_TOKENS),
        ]  # fmt: skip

    def parse(self, texts) -> Parsed:
        bad = check_answer_count(texts, 2)
        if bad:
            return bad
        sc, pq = read_score_list(texts[0]), read_score_list(texts[1])
        for p in (sc, pq):
            if not p.ok:
                return p
        return Parsed({"adherence": to_ours(sc.value), "aesthetics": to_ours(pq.value)})

    def answers(self, adherence: float, aesthetics: float) -> list[str]:
        a, q = from_ours(adherence), from_ours(aesthetics)
        return [json.dumps({"reasoning": "Scored from human ratings.", "score": [a, a]}),
                json.dumps({"reasoning": "Scored from human ratings.", "score": [q, q]})]  # fmt: skip
