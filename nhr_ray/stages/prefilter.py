"""Stage 6: soft pre-filter. A big open VLM (1) scores adherence and aesthetics, kept only if both reach
their thresholds, (2) answers whether only the asked-for change was made (and the instruction is clear
and feasible), (3) answers whether the edited image is pleasing. Every unreadable answer is a named
rejection; the three raw answers are kept together as JSON."""

from __future__ import annotations

import json

from nhr_ray.judges.profiles import JudgeProfile, role_profile
from nhr_ray.parsing import parse_yes_no, raw_text
from nhr_ray.prompts import render
from nhr_ray.records import Attempt, Source, Verdict
from nhr_ray.roles import VLMRequest
from nhr_ray.stages.base import Stage, StageResult, Tally, error_verdict
from nhr_ray.stages.validation import ask_grouped, score_verdict


class PrefilterStage(Stage):
    name = "prefilter"
    role = "prefilter"

    def process(self, attempts: list[Attempt], sources: dict[str, Source]) -> StageResult:
        cfg = self.config.prefilter
        tally = Tally(self.name)
        live = [a for a in attempts if a.alive]
        if not cfg.enabled:  # every edit passes, visibly
            for a in live:
                a.verdicts.append(Verdict(self.name, True, "ok", raw="prefilter disabled"))
                tally.add(a.verdicts[-1])
            tally.notes["prefilter_disabled"] += len(live)
            return self.attempts_result(attempts, tally)
        profile = role_profile(self.config, "prefilter")
        groups: list[list[VLMRequest]] = []
        n_scores = 0  # score questions per candidate (the profile's); the yes/no questions follow them
        for a in live:
            src = sources[a.job.source_id].image
            aid = a.job.attempt_id
            g = profile.requests(aid, a.instruction.text, src, a.edited)
            n_scores = len(g)
            if cfg.check_unwanted_change:
                g.append(VLMRequest(aid, "unwanted_change", render("unwanted_change", instruction=a.instruction.text),
                                    [src, a.edited]))
            if cfg.check_aesthetics:
                g.append(VLMRequest(aid, "aesthetics", render("aesthetics"), [a.edited]))
            groups.append(g)
        for a, answers in zip(live, ask_grouped(self.backend, groups)):
            got = {"edit_scores": answers[:n_scores]}
            rest = iter(answers[n_scores:])
            if cfg.check_unwanted_change:
                got["unwanted_change"] = next(rest)
            if cfg.check_aesthetics:
                got["aesthetics"] = next(rest)
            a.gpu_seconds[self.name] = sum(x.gpu_seconds for x in answers)
            v = decide(got, cfg, profile, self.config.answers.max_chars)
            a.verdicts.append(v)
            tally.add(v)
        return self.attempts_result(attempts, tally)


def decide(got: dict, cfg, profile: JudgeProfile, max_chars: int) -> Verdict:
    """Scores first (both thresholds), then each yes/no question; the first failure names the drop.
    got: 'edit_scores' -> the score answers (a list: a profile may ask more than once), each yes/no
    question -> its answer."""
    scores = got["edit_scores"]
    texts = {k: (profile.raw([x.text for x in ans]) if k == "edit_scores" else ans.text) for k, ans in got.items()}
    raw = json.dumps({k: t if t is None else raw_text(t, max_chars) for k, t in texts.items()}, ensure_ascii=False)
    for k, ans in got.items():
        err = next((x.error for x in ans if x.error), None) if k == "edit_scores" else ans.error
        if err:
            return error_verdict("prefilter", f"{k}:{err}", raw)
    v = score_verdict("prefilter", scores, profile, cfg.min_adherence, cfg.min_aesthetics, max_chars)
    v.raw = raw
    for question, no_reason in (("unwanted_change", "unwanted_change_or_vague"), ("aesthetics", "not_aesthetic")):
        if not v.keep or question not in got:
            continue
        p = parse_yes_no(got[question].text, max_chars)
        if not p.ok:
            v.keep, v.reason = False, f"{question}_{p.reason}"
        elif not p.value:
            v.keep, v.reason = False, no_reason
    return v
