"""scheduler.* config: bad budget, unknown policy, unknown categories, policy/unit mismatch fail on load."""

import pytest
from pydantic import ValidationError

from nhr_ray.config import SchedulerConfig


@pytest.mark.parametrize(
    "section, match",
    [
        ({"budget_gpu_hours": 0}, "must be a finite number > 0"),
        ({"budget_gpu_hours": -3}, "must be a finite number > 0"),
        ({"budget_gpu_hours": float("inf")}, "must be a finite number > 0"),
        ({"budget_gpu_hours": float("nan")}, "must be a finite number > 0"),
        ({"policy": "greedy"}, "unknown policy 'greedy'"),
        ({"policy": "per_category_m", "policy_options": {"attempts": {"sky": 2}}}, r"unknown categories \['sky'\]"),
        ({"policy": "adaptive", "policy_options": {"stirkes": 2}, "unit": "job"}, "policy_options.stirkes"),
        ({"policy": "until_first_success", "unit": "pair"}, "needs unit 'job'"),
        ({"budget_clock": "wall"}, "budget_clock"),
    ],
)
def test_bad_scheduler_config_is_refused(section, match):
    with pytest.raises(ValidationError, match=match):
        SchedulerConfig(**section)


def test_defaults():
    c = SchedulerConfig()
    assert (c.policy, c.budget_clock) == ("uniform", "reserved")
    assert SchedulerConfig(policy="adaptive", unit="job", policy_options={"low_score_quantile": 0.3}).policy == "adaptive"


def test_preset_budgets_on_busy_clock_and_hash_ignores_budget():
    from nhr_ray.config import load_config
    from nhr_ray.scheduler.core import scheduler_config_hash

    cfg = load_config()
    assert cfg.scheduler.budget_clock == "busy"  # the simulation's costs are virtual
    more = load_config(overrides=["scheduler.budget_gpu_hours=99"])
    other = load_config(overrides=["seed=5"])
    assert scheduler_config_hash(cfg) == scheduler_config_hash(more) != scheduler_config_hash(other)
