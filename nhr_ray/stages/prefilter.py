"""Stage 6: soft pre-filter. A big open VLM (1) scores adherence and aesthetics, kept only if both reach
their thresholds, (2) answers whether only the asked-for change was made (and the instruction is clear
and feasible), (3) answers whether the edited image is pleasing. Every unreadable answer is a named
rejection; the three raw answers are kept together as JSON."""

from __future__ import annotations

import json

from nhr_ray.parsing import SCORES_SCHEMA, parse_yes_no, raw_text
from nhr_ray.prompts import render
from nhr_ray.records import Attempt, Source, Verdict
from nhr_ray.roles import VLMRequest
from nhr_ray.stages.base import Stage, Tally, error_verdict
from nhr_ray.stages.validate import score_verdict


class PrefilterStage(Stage):
    name = "prefilter"
    role = "prefilter"

    def process(self, attempts: list[Attempt], sources: dict[str, Source]) -> tuple[list[Attempt], Tally]:
        cfg = self.config.prefilter
        tally = Tally(self.name)
        live = [a for a in attempts if a.alive]
        if not cfg.enabled:  # every edit passes, visibly
            for a in live:
                a.verdicts.append(Verdict(self.name, True, "ok", raw="prefilter disabled"))
                tally.add(a.verdicts[-1])
            tally.notes["prefilter_disabled"] += len(live)
            return attempts, tally
        reqs: list[VLMRequest] = []
        for a in live:
            src = sources[a.job.source_id].image
            aid, truth = a.job.attempt_id, a.sim_truth
            reqs.append(VLMRequest(aid, "edit_scores", render("edit_scores", instruction=a.instruction.text),
                                   [src, a.edited], SCORES_SCHEMA, truth))
            if cfg.check_unwanted_change:
                reqs.append(VLMRequest(aid, "unwanted_change", render("unwanted_change", instruction=a.instruction.text),
                                       [src, a.edited], None, truth))
            if cfg.check_aesthetics:
                reqs.append(VLMRequest(aid, "aesthetics", render("aesthetics"), [a.edited], None, truth))
        answers = iter(self.backend.ask(reqs) if reqs else [])
        for a in live:
            got = {"edit_scores": next(answers)}
            if cfg.check_unwanted_change:
                got["unwanted_change"] = next(answers)
            if cfg.check_aesthetics:
                got["aesthetics"] = next(answers)
            a.gpu_seconds[self.name] = sum(x.gpu_seconds for x in got.values())
            v = decide(got, cfg, self.config.answers.max_chars)
            a.verdicts.append(v)
            tally.add(v)
        return attempts, tally


def decide(got: dict, cfg, max_chars: int) -> Verdict:
    """Scores first (both thresholds), then each yes/no question; the first failure names the drop."""
    raw = json.dumps({k: ans.text if ans.text is None else raw_text(ans.text, max_chars) for k, ans in got.items()},
                     ensure_ascii=False)  # fmt: skip
    for k, ans in got.items():
        if ans.error:
            return error_verdict("prefilter", f"{k}:{ans.error}", raw)
    v = score_verdict("prefilter", got["edit_scores"], cfg.min_adherence, cfg.min_aesthetics, max_chars)
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
