"""Stage 11: backward consistency (optional). The hard validator re-scores every inverse triplet with
its own thresholds T_inv; a failure drops the inverse, its forward twin and every composed triplet
built on that forward (catches scenes where the T2I model never drew the object that was 'removed').

The same stage, on the same validator actors, serves `composition.rescore` ('rescore'): composed
triplets judged with the validator's own profile and thresholds, as forward edits are (stage 8)."""

from __future__ import annotations

from dataclasses import replace

from nhr_ray.io.images import decode
from nhr_ray.io.rows import TripletRow
from nhr_ray.records import Verdict, geometric_score
from nhr_ray.stages.base import StageResult, Tally
from nhr_ray.stages.panel import JudgingStage


# purpose -> (judging profile, config section holding its min_adherence / min_aesthetics)
PURPOSES = {"consistency": ("consistency", "consistency"), "rescore": ("validation", "validation")}


def judged(t: TripletRow, v: Verdict, scored_by: str) -> TripletRow:
    """`t` carrying the scores of the verdict it was kept on."""
    return replace(t, adherence=v.adherence, aesthetics=v.aesthetics, score=geometric_score(v.adherence, v.aesthetics),
                   score_source="judged", scored_by=scored_by, scores_from=[])  # fmt: skip


class ConsistencyStage(JudgingStage):
    """On the validator role's actors: its judge, or its ensemble's (stages/panel.py)."""

    name = "consistency"
    role = "validator"

    def process(self, triplets: list[TripletRow], purpose: str = "consistency") -> StageResult:
        """Inverse triplets ('consistency') or compositions ('rescore'). Rows: (sample_id, verdict (its
        stage: the purpose), usage) each; the tally is left to the caller (apply_consistency: a failure
        drops more rows)."""
        judging, section = PURPOSES[purpose]
        cfg = getattr(self.config, section)
        limit = self.config.output.max_image_pixels
        items = [(t.sample_id, t.edit_instruction, decode(t.source_image["bytes"], limit), decode(t.edited_image["bytes"], limit))
                 for t in triplets]  # fmt: skip
        got = self.panel.judge(judging, purpose, items, cfg.min_adherence, cfg.min_aesthetics)
        out = [(t.sample_id, g.verdict, g.usage) for t, g in zip(triplets, got)]
        return self.result(out, Tally(self.name), sum(g.gpu_seconds for g in got), [g.usage for g in got])


def apply_consistency(triplets: list[TripletRow], verdicts: dict[str, Verdict]) -> tuple[list[TripletRow], Tally]:
    """Drop failed inverses, their forward twins and compositions built on a dropped forward; a kept
    inverse carries its own scores (judged)."""
    tally = Tally("consistency")
    bad_forward = {
        t.parents[0] for t in triplets if t.kind == "inverse" and not verdicts[t.sample_id].keep and not verdicts[t.sample_id].failed
    }
    kept = []
    for t in triplets:
        if t.kind == "inverse":
            v = verdicts[t.sample_id]
            if v.keep:
                kept.append(judged(t, v, "consistency"))
                tally.keep()
            elif v.failed:
                tally.n_in += 1
                tally.failed[v.reason] += 1
            else:
                tally.drop(f"inverse_{v.reason}")
        elif t.kind == "forward" and t.sample_id in bad_forward:
            tally.drop("forward_twin_of_failed_inverse")
        elif t.kind == "composed" and bad_forward.intersection(t.parents):
            tally.drop("composed_from_dropped_edit")
        else:
            kept.append(t)
            tally.keep()
    return kept, tally
