"""Stage 8: hard validation. The strongest judge scores every pre-filtered candidate; keep adherence
>= 4.7 and aesthetics >= 4.7 (config). Also used by stage 11 on inverse triplets."""

from __future__ import annotations

from nhr_ray.parsing import MAX_ANSWER_CHARS, SCORES_SCHEMA, parse_scores, raw_text
from nhr_ray.prompts import render
from nhr_ray.records import Attempt, Source, Verdict
from nhr_ray.roles import Answer, VLMRequest
from nhr_ray.stages.base import Stage, Tally, error_verdict


def score_request(item_id: str, instruction: str, before, after, truth=None) -> VLMRequest:
    return VLMRequest(item_id, "edit_scores", render("edit_scores", instruction=instruction), [before, after], SCORES_SCHEMA, truth)


def score_verdict(stage: str, ans: Answer, min_adherence: float, min_aesthetics: float,
                  max_chars: int = MAX_ANSWER_CHARS) -> Verdict:  # fmt: skip
    raw = raw_text(ans.text, max_chars)
    if ans.error:
        return error_verdict(stage, ans.error, raw)
    s = parse_scores(ans.text, max_chars=max_chars)
    if not s.ok:
        return Verdict(stage, False, f"scores_{s.reason}", raw)
    adh, aes = s.value["adherence"], s.value["aesthetics"]
    if adh < min_adherence:
        return Verdict(stage, False, "low_adherence", raw, adh, aes)
    if aes < min_aesthetics:
        return Verdict(stage, False, "low_aesthetics", raw, adh, aes)
    return Verdict(stage, True, "ok", raw, adh, aes)


class ValidateStage(Stage):
    name = "validate"
    role = "validator"

    def process(self, attempts: list[Attempt], sources: dict[str, Source]) -> tuple[list[Attempt], Tally]:
        cfg = self.config.validation
        tally = Tally(self.name)
        live = [a for a in attempts if a.alive]
        reqs = [score_request(a.job.attempt_id, a.instruction.text, sources[a.job.source_id].image, a.edited, a.sim_truth) for a in live]
        for a, ans in zip(live, self.backend.ask(reqs) if reqs else []):
            a.gpu_seconds[self.name] = ans.gpu_seconds
            for k, x in ans.usage.items():
                a.usage[k] = a.usage.get(k, 0.0) + x
            v = score_verdict(self.name, ans, cfg.min_adherence, cfg.min_aesthetics, self.config.answers.max_chars)
            a.verdicts.append(v)
            tally.add(v)
        return attempts, tally
