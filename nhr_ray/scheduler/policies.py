"""Draw policies: which jobs to issue next, and when to stop mining a pair.

A policy is one class with an `Options` model (validated from `scheduler.policy_options`) and one
line in POLICIES. It sees every attempt's result (category, prefilter_pass, validator_pass, reason,
score) for pairs still being mined, may stop a pair (`sched.stop_pair`) and may weight categories
(`weights()`: None draws uniformly over all available jobs, the paper's law).

Per-pair policy state lives in one byte of the job space (`space.state`): status in bits 0-2, a
low-score streak in bits 3-5, vague/infeasible strikes in bits 6-7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nhr_ray.categories import check_categories

if TYPE_CHECKING:
    from nhr_ray.scheduler.core import JobScheduler

ACTIVE, SUCCEEDED, GAVE_UP_VAGUE, GAVE_UP_LOW = 0, 1, 2, 3
STATUS_NAMES = {SUCCEEDED: "succeeded", GAVE_UP_VAGUE: "gave_up_vague", GAVE_UP_LOW: "gave_up_low_scores"}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _passed(result: dict[str, Any], on: str) -> bool:
    return bool(result.get("validator_pass" if on == "validator" else "prefilter_pass"))


class Policy:
    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    stops_pairs: ClassVar[bool] = False  # needs unit='job': a pair drawn whole has nothing left to cancel

    def __init__(self, options: Options, categories: list[str], attempts_per_pair: int):
        self.opts = options
        self.categories = categories
        self.m = attempts_per_pair

    def attempts_for(self, category: str) -> int:
        return self.m

    def max_attempts(self) -> int:
        return self.m

    def weights(self, sched: JobScheduler) -> np.ndarray | None:
        return None

    def on_result(self, sched: JobScheduler, pair: int, cat: int, result: dict[str, Any]) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def report(self, sched: JobScheduler) -> dict[str, Any]:
        return {}


class Uniform(Policy):
    """The paper's: every available job equally likely, M attempts per pair, no early stop."""

    name = "uniform"


class PerCategoryM(Policy):
    """M per instruction category (SPEC stage 4's first named next step)."""

    name = "per_category_m"

    class Options(Options):
        attempts: dict[str, int] = Field(default_factory=dict, description="M per category; others keep edit.attempts_per_instruction.")

        @field_validator("attempts")
        @classmethod
        def _known(cls, v):
            check_categories(v)
            for k, m in v.items():
                if not 1 <= m <= 64:
                    raise ValueError(f"{k}: attempts must be in 1..64, got {m}")
            return v

    def attempts_for(self, category: str) -> int:
        return self.opts.attempts.get(category, self.m)

    def max_attempts(self) -> int:
        return max([self.m, *self.opts.attempts.values()])


class UntilFirstSuccess(Policy):
    """No more attempts for a pair once one passed (the pre-filter, or the hard validator)."""

    name = "until_first_success"
    stops_pairs = True

    class Options(Options):
        stop_on: Literal["prefilter", "validator"] = Field("prefilter", description="Which pass stops the pair.")

    def on_result(self, sched, pair, cat, result):
        if _passed(result, self.opts.stop_on):
            sched.stop_pair(pair, SUCCEEDED)


class Weakness(Policy):
    """More draws for categories where the editor rarely succeeds (SPEC: weakness targeting).

    weight_c = max(floor, (r / rate_c) ** strength), rate_c the smoothed success rate of category c
    (prior: the run's overall rate with `prior_strength` pseudo-attempts) and r the lowest rate; a
    category's draw share is proportional to weight_c x its available jobs."""

    name = "weakness"

    class Options(Options):
        success_on: Literal["prefilter", "validator"] = Field("validator", description="What counts as a success.")
        explore_floor: float = Field(0.2, gt=0, le=1, description="Lowest relative weight of any category.")
        strength: float = Field(1.0, ge=0, description="Exponent on the inverse success rate.")
        prior_strength: float = Field(20.0, gt=0, description="Pseudo-attempts at the overall rate per category.")

    def rates(self, sched) -> np.ndarray:
        st = sched.cat_stats
        done = st["completed"].astype(float)
        succ = st[f"{self.opts.success_on}_pass"].astype(float)
        overall = (succ.sum() + 1.0) / (done.sum() + 2.0)
        k = self.opts.prior_strength
        return (succ + k * overall) / (done + k)

    def weights(self, sched):
        r = self.rates(sched)
        w = (r.min() / r) ** self.opts.strength
        return np.maximum(w, self.opts.explore_floor)

    def report(self, sched):
        names = sched.category_names
        issued = sched.cat_stats["issued"].astype(float)
        mix = issued / max(issued.sum(), 1.0)
        return {
            "weights": dict(zip(names, np.round(self.weights(sched), 4).tolist())),
            "success_rate": dict(zip(names, np.round(self.rates(sched), 4).tolist())),
            "issued_mix": dict(zip(names, np.round(mix, 4).tolist())),
        }


class Adaptive(Policy):
    """Stop a pair at its first success; give up on pairs that look hopeless: the pre-filter called
    the instruction vague/infeasible (`give_up_reasons`) `strikes` times, or `low_streak` attempts
    in a row scored below the threshold. The threshold is `low_score`, or once `min_observations`
    scores were seen and `low_score_quantile` is set, that quantile of the run's scores."""

    name = "adaptive"
    stops_pairs = True

    class Options(Options):
        stop_on: Literal["prefilter", "validator"] = "prefilter"
        give_up_reasons: list[str] = Field(
            ["unwanted_change", "unwanted_change_or_vague"],
            description="Pre-filter drop reasons that count as 'vague/infeasible' (stages/prefilter.py names them).",
        )
        strikes: int = Field(2, ge=1, le=3, description="Such drops before giving up on the pair.")
        low_score: float = Field(2.5, ge=1, le=5, description="A score below this is low.")
        score_field: Literal["score", "adherence"] = Field(
            "score", description="What 'score' means: the pre-filter's geometric score, or its adherence alone "
            "(a sharper sign that the instruction cannot be carried out on this image).")
        low_score_quantile: float | None = Field(None, gt=0, lt=1, description="Use this quantile of the run's scores instead, once measured.")
        min_observations: int = Field(200, ge=1)
        low_streak: int = Field(2, ge=1, le=7, description="Low scores in a row before giving up.")

    BINS = 81  # scores 1.0..5.0 in steps of 0.05

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.hist = np.zeros(self.BINS, np.int64)

    def threshold(self) -> float:
        q = self.opts.low_score_quantile
        if q is None or self.hist.sum() < self.opts.min_observations:
            return self.opts.low_score
        cum = np.cumsum(self.hist) / self.hist.sum()
        return 1.0 + 0.05 * int(np.searchsorted(cum, q))

    def on_result(self, sched, pair, cat, result):
        o = self.opts
        score = result.get(o.score_field)
        scored = isinstance(score, (int, float)) and np.isfinite(score)
        if scored:
            self.hist[int(np.clip(round((score - 1.0) / 0.05), 0, self.BINS - 1))] += 1
        if _passed(result, o.stop_on):
            sched.stop_pair(pair, SUCCEEDED)
            return
        s = int(sched.space.state[pair])
        streak, strikes = (s >> 3) & 7, (s >> 6) & 3
        if result.get("reason") in o.give_up_reasons:
            strikes += 1
        if scored:
            streak = streak + 1 if score < self.threshold() else 0
        sched.space.state[pair] = (s & 7) | (min(streak, 7) << 3) | (min(strikes, 3) << 6)
        if strikes >= o.strikes:
            sched.stop_pair(pair, GAVE_UP_VAGUE)
        elif streak >= o.low_streak:
            sched.stop_pair(pair, GAVE_UP_LOW)

    def state(self):
        return {"hist": self.hist.tolist()}

    def load_state(self, state):
        self.hist = np.array(state["hist"], np.int64)

    def report(self, sched):
        return {"low_score_threshold": round(self.threshold(), 3), "scores_seen": int(self.hist.sum())}


POLICIES: dict[str, type[Policy]] = {
    "uniform": Uniform,
    "per_category_m": PerCategoryM,
    "until_first_success": UntilFirstSuccess,
    "weakness": Weakness,
    "adaptive": Adaptive,
}


def check_policy(name: str, unit: str) -> type[Policy]:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {sorted(POLICIES)}")
    cls = POLICIES[name]
    if cls.stops_pairs and unit != "job":
        raise ValueError(f"policy {name!r} stops pairs early and needs unit 'job' (with unit {unit!r} every attempt "
                         "of a pair is issued at once, so a stop saves nothing)")  # fmt: skip
    return cls


def make_policy(name: str, options: dict[str, Any] | None, categories: list[str], attempts: int, unit: str = "job") -> Policy:
    """Build a policy; unknown names, bad options and a unit it cannot work with raise ValueError."""
    cls = check_policy(name, unit)
    return cls(cls.Options.model_validate(options or {}), categories, attempts)
