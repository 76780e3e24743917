"""Stage 3: plausibility gate. A small VLM answers yes/no: does the image show the prompt, and does it
look plausible? 'No', or an answer that is not a clear yes/no, drops the seed (counted by reason)."""

from __future__ import annotations

from nhr_ray.parsing import parse_yes_no, raw_text
from nhr_ray.prompts import render
from nhr_ray.records import Source, Verdict
from nhr_ray.roles import VLMRequest
from nhr_ray.stages.base import Stage, StageResult, Tally, error_verdict


class GateStage(Stage):
    name = "gate"
    role = "gate"

    def process(self, sources: list[Source]) -> StageResult:
        tally, cost = Tally(self.name), 0.0
        live = [s for s in sources if s.gate is None]
        if not self.config.gate.enabled:  # every source passes, visibly
            for s in live:
                s.gate = Verdict(self.name, True, "ok", raw="gate disabled")
                tally.add(s.gate)
            tally.notes["gate_disabled"] += len(live)
            return self.result(sources, tally, cost)
        reqs = [
            VLMRequest(s.source_id, "plausibility", render("plausibility", prompt=s.prompt), [s.image])
            for s in live
        ]
        answers = self.backend.ask(reqs) if reqs else []
        cap = self.config.answers.max_chars
        for s, ans in zip(live, answers):
            cost += ans.gpu_seconds
            s.gpu_seconds += ans.gpu_seconds
            if ans.error:
                v = error_verdict(self.name, ans.error, raw_text(ans.text, cap))
            else:
                p = parse_yes_no(ans.text, cap)
                if not p.ok:
                    v = Verdict(self.name, False, p.reason, raw=raw_text(ans.text, cap))
                else:
                    v = Verdict(self.name, p.value, "ok" if p.value else "implausible", raw=raw_text(ans.text, cap))
            s.gate = v
            tally.add(v)
        return self.result(sources, tally, cost)
