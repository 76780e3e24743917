"""Stage 5: edit. A black-box editor (image, instruction, seed) -> image, one seed per attempt."""

from __future__ import annotations

from nhr_ray.records import Attempt, Job, Source, Verdict
from nhr_ray.roles import EditRequest
from nhr_ray.stages.base import Stage, StageResult, Tally, error_verdict


class EditStage(Stage):
    name = "edit"
    role = "editor"

    def process(self, jobs: list[Job], sources: dict[str, Source]) -> StageResult:
        tally = Tally(self.name)
        attempts = []
        for j in jobs:
            src = sources[j.source_id]
            attempts.append(Attempt(j, src.instructions[j.instruction_index], src.width, src.height))
        reqs = [
            EditRequest(a.job.attempt_id, sources[a.job.source_id].image, a.instruction.text, a.job.seed)
            for a in attempts
        ]
        answers = self.backend.edit(reqs) if reqs else []
        for a, ans in zip(attempts, answers):
            a.gpu_seconds[self.name] = ans.gpu_seconds
            a.edit_meta = dict(ans.meta)
            if ans.error or ans.image is None:
                v = error_verdict(self.name, ans.error or "no_image")
            else:
                a.edited = ans.image
                v = Verdict(self.name, True, "ok")
            a.verdicts.append(v)
            tally.add(v)
        return self.attempts_result(attempts, tally)
