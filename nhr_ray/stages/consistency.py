"""Stage 11: backward consistency (optional). The hard validator re-scores every inverse triplet with
its own thresholds T_inv; a failure drops the inverse, its forward twin and every composed triplet
built on that forward (catches scenes where the T2I model never drew the object that was 'removed')."""

from __future__ import annotations

from nhr_ray.io.images import decode
from nhr_ray.judges.profiles import role_profile
from nhr_ray.records import Verdict
from nhr_ray.stages.base import Stage, Tally
from nhr_ray.stages.validate import ask_grouped, merge_usage, score_verdict


class ConsistencyStage(Stage):
    name = "consistency"
    role = "validator"

    def process(self, inverses: list[dict]) -> tuple[dict[str, Verdict], list[dict]]:
        """inverses: inverse triplet rows (images as {bytes, path} structs). Returns sample_id ->
        verdict, and usage."""
        cfg = self.config.consistency
        limit = self.config.output.max_image_pixels
        profile = role_profile(self.config, "consistency")
        groups = [
            profile.requests(t["sample_id"], t["edit_instruction"], decode(t["source_image"]["bytes"], limit),
                             decode(t["edited_image"]["bytes"], limit), t.get("_sim_truth"))
            for t in inverses
        ]  # fmt: skip
        out, usage = {}, []
        for t, answers in zip(inverses, ask_grouped(self.backend, groups)):
            usage.append(merge_usage(answers))
            out[t["sample_id"]] = score_verdict(self.name, answers, profile, cfg.min_adherence, cfg.min_aesthetics,
                                                  self.config.answers.max_chars)
        return out, usage


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
