"""The validator role's judges (stages 8 and 11): its one judge, or an ensemble (judging.ensemble)
whose scores combine, per axis, into the one pair of scores the thresholds see.

Every judge is asked about every candidate (one backend call per judge for the whole batch) and read
through its own profile. The verdict carries each judge's scores and reason (`judges`: the attempts
table's `validation_judges`), whatever the outcome. Combination rules, per axis over the judges that
gave readable scores:

    mean        the judges' mean
    min         the lowest score: every judge must clear the bar
    calibrated  sum_i w_i (s_i - bias_i) / sum_i w_i, w_i = 1 / error_sd_i^2 (from `nhr-ray calibrate`)

A judge whose answer cannot be read (or whose call failed) is left out of the combination when at
least `min_judges` others answered (counted in the stage's notes as `judge_missing:<judge>:<reason>`);
otherwise the candidate takes that judge's reason, prefixed with its name (`<judge>:<reason>`), as a
drop or, for an infrastructure error, a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from nhr_ray.config.run import PanelJudge
from nhr_ray.judges.profiles import JudgeProfile, get_profile
from nhr_ray.records import Verdict
from nhr_ray.roles import BackendContext, build_backend
from nhr_ray.stages.base import Redacting, Stage

AXES = ("adherence", "aesthetics")


@dataclass
class Judged:
    """One candidate's verdict, the GPU-seconds its questions took and their API usage, summed."""

    verdict: Verdict
    gpu_seconds: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def combine(rule: str, scores: list[tuple[float, float]], judges: list[PanelJudge]) -> tuple[float, float]:
    """Per axis, the combined score of the judges' (adherence, aesthetics) by `rule` (module docstring)."""
    s = np.asarray(scores, float)
    if rule == "mean":
        out = s.mean(axis=0)
    elif rule == "min":
        out = s.min(axis=0)
    elif rule == "calibrated":
        bias = np.array([[j.bias[a] for a in AXES] for j in judges], float)
        w = 1.0 / np.array([[j.error_sd[a] for a in AXES] for j in judges], float) ** 2
        out = np.clip(((s - bias) * w).sum(axis=0) / w.sum(axis=0), 1.0, 5.0)
    else:
        raise ValueError(f"unknown combination rule {rule!r}")
    return round(float(out[0]), 4), round(float(out[1]), 4)


def judge_row(name: str, v: Verdict) -> dict:
    """One judge's part of a verdict: what the attempts table keeps of it."""
    return {"judge": name, "adherence": v.adherence, "aesthetics": v.aesthetics, "outcome": v.outcome, "reason": v.reason}


def ensemble_verdict(stage: str, per_judge: list[tuple[PanelJudge, Verdict]], rule: str, min_judges: int | None,
                     min_adherence: float, min_aesthetics: float) -> tuple[Verdict, list[str]]:  # fmt: skip
    """The combined verdict of several judges' verdicts on one candidate, and the notes it leaves."""
    rows = [judge_row(j.name, v) for j, v in per_judge]
    raw = json.dumps({j.name: v.raw for j, v in per_judge}, ensure_ascii=False)
    read = [(j, v) for j, v in per_judge if v.adherence is not None and v.aesthetics is not None]
    missing = [(j, v) for j, v in per_judge if v.adherence is None or v.aesthetics is None]
    if len(read) < (min_judges or len(per_judge)):
        j, v = missing[0]
        return Verdict(stage, False, f"{j.name}:{v.reason}", raw, failed=v.failed, judges=rows), []
    adh, aes = combine(rule, [(v.adherence, v.aesthetics) for _, v in read], [j for j, _ in read])
    notes = [f"judge_missing:{j.name}:{v.reason}" for j, v in missing]
    if adh < min_adherence:
        return Verdict(stage, False, "low_adherence", raw, adh, aes, judges=rows), notes
    if aes < min_aesthetics:
        return Verdict(stage, False, "low_aesthetics", raw, adh, aes, judges=rows), notes
    return Verdict(stage, True, "ok", raw, adh, aes, judges=rows), notes


class Panel:
    """The validator role's judges, each with its backend (built once per actor)."""

    def __init__(self, config, backends: dict[str, object]):
        self.config = config
        self.backends = backends  # judge name -> backend (Redacting)

    @classmethod
    def build(cls, stage) -> "Panel":
        """The panel of a Stage whose role is the validator: its one backend (Stage.setup's), or one
        per ensemble judge, all on this actor's GPUs."""
        cfg = stage.config
        if cfg.judging.ensemble is None:
            stage.setup_backend()
            return cls(cfg, {"validator": stage.backend})
        rc, out = cfg.role(stage.role), {}
        for j in cfg.validator_judges():
            ctx = BackendContext(role=stage.role, run_seed=cfg.seed, num_gpus=stage._num_gpus or rc.num_gpus, sim=cfg.sim,
                                 run_config=cfg, device=stage.device, limits=stage.limits, judge=j.name)  # fmt: skip
            backend = build_backend(stage.role, j.backend, j.options, ctx)
            backend.setup()
            out[j.name] = Redacting(backend, stage.redact)
        stage.backend = next(iter(out.values()))
        return cls(cfg, out)

    def judges(self, stage: str) -> list[tuple[PanelJudge, JudgeProfile]]:
        return [(j, get_profile(j.profile, j.prompt_dir)) for j in self.config.validator_judges(stage)]

    def judge(self, stage: str, purpose: str, items: list[tuple], min_adherence: float, min_aesthetics: float) -> list[Judged]:
        """Verdicts (stage `purpose`) on `items` = [(item_id, instruction, before, after)], each judge
        asked with the profile it has for the judging stage `stage` ('validation' or 'consistency')."""
        from nhr_ray.stages.validation import ask_grouped, merge_usage, score_verdict

        max_chars = self.config.answers.max_chars
        out = [Judged(Verdict(purpose, False, "")) for _ in items]
        per: list[list[tuple[PanelJudge, Verdict]]] = [[] for _ in items]
        for j, profile in self.judges(stage):
            groups = [profile.requests(*it) for it in items]
            for k, answers in enumerate(ask_grouped(self.backends[j.name], groups)):
                v = score_verdict(purpose, answers, profile, min_adherence, min_aesthetics, max_chars)
                per[k].append((j, v))
                out[k].gpu_seconds += sum(a.gpu_seconds for a in answers)
                for key, x in merge_usage(answers).items():
                    out[k].usage[key] = out[k].usage.get(key, 0.0) + x
        ens = self.config.judging.ensemble
        for k, pj in enumerate(per):
            if ens is None:
                j, v = pj[0]
                out[k].verdict = replace(v, judges=[judge_row(j.name, v)])
            else:
                out[k].verdict, out[k].notes = ensemble_verdict(purpose, pj, ens.combine, ens.min_judges, min_adherence, min_aesthetics)
        return out

    def teardown(self) -> None:
        for b in self.backends.values():
            b.teardown()


class JudgingStage(Stage):
    """A stage on the validator role's actors: it judges with the role's Panel, built in setup()."""

    panel: Panel | None = None

    def setup(self) -> None:
        if self.panel is None:
            self.panel = Panel.build(self)

    def teardown(self) -> None:
        if self.panel is not None:
            self.panel.teardown()
            self.panel = self.backend = None
