"""Stage 11: backward consistency (optional). The hard validator re-scores every inverse triplet with
its own thresholds T_inv; a failure drops the inverse, its forward twin and every composed triplet
built on that forward (catches scenes where the T2I model never drew the object that was 'removed')."""

from __future__ import annotations

from nhr_ray.io.images import decode
from nhr_ray.judges.profiles import role_profile
from nhr_ray.records import Verdict
from nhr_ray.stages.base import Stage, StageResult, Tally
from nhr_ray.stages.validation import ask_grouped, merge_usage, score_verdict


class ConsistencyStage(Stage):
    name = "consistency"
    role = "validator"

    def process(self, inverses: list[dict]) -> StageResult:
        """inverses: inverse triplet rows (images as {bytes, path} structs). Rows: (sample_id,
        verdict, usage) each; the tally is left to apply_consistency (a failure drops more rows)."""
        cfg = self.config.consistency
        limit = self.config.output.max_image_pixels
        profile = role_profile(self.config, "consistency")
        groups = [
            profile.requests(t["sample_id"], t["edit_instruction"], decode(t["source_image"]["bytes"], limit),
                             decode(t["edited_image"]["bytes"], limit))
            for t in inverses
        ]  # fmt: skip
        out, seconds = [], 0.0
        for t, answers in zip(inverses, ask_grouped(self.backend, groups)):
            v = score_verdict(self.name, answers, profile, cfg.min_adherence, cfg.min_aesthetics, self.config.answers.max_chars)
            out.append((t["sample_id"], v, merge_usage(answers)))
            seconds += sum(a.gpu_seconds for a in answers)
        return self.result(out, Tally(self.name), seconds, [u for _, _, u in out])


def apply_consistency(triplets: list[dict], verdicts: dict[str, Verdict]) -> tuple[list[dict], Tally]:
    """Drop failed inverses, their forward twins and compositions built on a dropped forward."""
    tally = Tally("consistency")
    bad_forward = {
        t["parents"][0]
        for t in triplets
        if t["kind"] == "inverse" and not verdicts[t["sample_id"]].keep and not verdicts[t["sample_id"]].failed
    }
    kept = []
    for t in triplets:
        if t["kind"] == "inverse":
            v = verdicts[t["sample_id"]]
            if v.keep:
                t["adherence"], t["aesthetics"] = v.adherence, v.aesthetics
                t["score"] = (v.adherence * v.aesthetics) ** 0.5
                kept.append(t)
                tally.keep()
            elif v.failed:
                tally.n_in += 1
                tally.failed[v.reason] += 1
            else:
                tally.drop(f"inverse_{v.reason}")
        elif t["kind"] == "forward" and t["sample_id"] in bad_forward:
            tally.drop("forward_twin_of_failed_inverse")
        elif t["kind"] == "composed" and bad_forward.intersection(t["parents"]):
            tally.drop("composed_from_dropped_edit")
        else:
            kept.append(t)
            tally.keep()
    return kept, tally
