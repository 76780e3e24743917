"""Stage 8: hard validation. The strongest judge scores every pre-filtered candidate; keep adherence
>= 4.7 and aesthetics >= 4.7 (config). Also used by stage 11 on inverse triplets.

How a judge is asked and how its answer is read is its profile's business (nhr_ray/judges,
`judging.<stage>.profile`); a profile may need more than one question per candidate."""

from __future__ import annotations

from nhr_ray.judges.profiles import JudgeProfile
from nhr_ray.parsing import MAX_ANSWER_CHARS, raw_text, too_long
from nhr_ray.records import Attempt, Source, Verdict
from nhr_ray.roles import Answer, VLMRequest
from nhr_ray.stages.base import StageResult, Tally, error_verdict
from nhr_ray.stages.panel import JudgingStage


def ask_grouped(backend, groups: list[list[VLMRequest]]) -> list[list[Answer]]:
    """One backend call for every candidate's questions; the answers regrouped per candidate."""
    flat = [r for g in groups for r in g]
    answers = iter(backend.ask(flat) if flat else [])
    return [[next(answers) for _ in g] for g in groups]


def merge_usage(answers: list[Answer]) -> dict[str, float]:
    usage: dict[str, float] = {}
    for ans in answers:
        for k, x in ans.usage.items():
            usage[k] = usage.get(k, 0.0) + x
    return usage


def score_verdict(stage: str, answers: list[Answer], profile: JudgeProfile, min_adherence: float, min_aesthetics: float,
                  max_chars: int = MAX_ANSWER_CHARS) -> Verdict:  # fmt: skip
    """The verdict on one candidate's score answers: an answer over `max_chars` is not parsed
    (`scores_answer_too_long`), whatever the profile; the raw text kept is capped the same way."""
    texts = [a.text for a in answers]
    raw = raw_text(profile.raw(texts), max_chars)
    err = next((a.error for a in answers if a.error), None)
    if err:
        return error_verdict(stage, err, raw)
    if any(too_long(t, max_chars) for t in texts):
        return Verdict(stage, False, "scores_answer_too_long", raw)
    s = profile.parse(texts)
    if not s.ok:
        return Verdict(stage, False, f"scores_{s.reason}", raw)
    adh, aes = s.value["adherence"], s.value["aesthetics"]
    if adh < min_adherence:
        return Verdict(stage, False, "low_adherence", raw, adh, aes)
    if aes < min_aesthetics:
        return Verdict(stage, False, "low_aesthetics", raw, adh, aes)
    return Verdict(stage, True, "ok", raw, adh, aes)


class ValidationStage(JudgingStage):
    """Every live attempt judged by the validator role's judge, or its ensemble's (stages/panel.py)."""

    name = "validation"
    role = "validator"

    def process(self, attempts: list[Attempt], sources: dict[str, Source]) -> StageResult:
        cfg = self.config.validation
        tally, usage = Tally(self.name), []
        live = [a for a in attempts if a.alive]
        items = [(a.job.attempt_id, a.instruction.text, sources[a.job.source_id].image, a.edited) for a in live]
        for a, got in zip(live, self.panel.judge("validation", self.name, items, cfg.min_adherence, cfg.min_aesthetics)):
            a.gpu_seconds[self.name] = got.gpu_seconds
            usage.append(got.usage)
            for k, x in got.usage.items():
                a.usage[k] = a.usage.get(k, 0.0) + x
            a.verdicts.append(got.verdict)
            tally.add(got.verdict)
            tally.notes.update(got.notes)
        return self.attempts_result(attempts, tally, usage)
