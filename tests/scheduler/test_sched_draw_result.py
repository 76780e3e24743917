"""The typed draw result (scheduler/draw.py) and the scheduler built from a run's config in one place."""

import math

import pytest

from nhr_ray.config import load_config
from nhr_ray.scheduler.core import JobScheduler, scheduler_config_hash

CATS = ["removal", "addition", "colour_change", "replacement", "style"]


def test_from_config_is_what_the_run_sets():
    cfg = load_config(overrides=["seed=11", "scheduler.budget_gpu_hours=2", "scheduler.unit=pair",
                                 "scheduler.budget_clock=reserved", "edit.attempts_per_instruction=4"])  # fmt: skip
    s = JobScheduler.from_config(cfg)
    assert (s.run_seed, s.m, s.unit, s.budget_s, s.budget_clock) == (11, 4, "pair", 7200.0, "reserved")
    assert s.config_hash == scheduler_config_hash(cfg)
    assert s.prior == pytest.approx(8.8 + 2.0)  # SPEC.md's GPU-s per attempt over the attempt chain's roles


def test_a_draw_says_what_is_left_and_what_the_budget_pays_for():
    s = JobScheduler(0, 2, budget_gpu_hours=100 / 3600, prior_job_cost=10.0)  # 100 GPU-s: ten jobs at the prior
    s.add_sources(["S0.n00", "S1.n00"], [CATS[:3], CATS[:2]])  # 5 pairs x 2 = 10 jobs
    d = s.draw_result(4)
    assert len(d.jobs) == 4 and d.pending == 6 and not d.exhausted
    assert d.affordable == pytest.approx(6.0)  # 100 - 4 x 10 held, at 10 a job
    assert d.waiting_jobs(6) == pytest.approx(6.0) and d.waiting_jobs(3) == 3
    s.complete(d.jobs[0].attempt_id, {"edit": ("editor", 40.0)})  # costlier than held: less is affordable
    d = s.draw_result(0)
    assert d.jobs == [] and d.affordable == pytest.approx(3.0)  # 100 - 40 - 3 x 10 = 30
    free = JobScheduler(0, 2).draw_result(1)
    assert free.affordable == math.inf and free.waiting_jobs(7) == 7 and not free.exhausted


def test_a_draw_carries_the_jobs_a_policy_withdrew_once():
    s = JobScheduler(0, 3, policy="until_first_success", policy_options={"stop_on": "prefilter"})
    s.add_sources(["S0.n00"], [CATS[:1]])  # one pair, three attempts
    (job,) = s.draw_result(1).jobs
    result = {"category": "removal", "prefilter_pass": True, "validator_pass": False, "reason": "ok"}
    s.complete(job.attempt_id, {"edit": ("editor", 1.0)}, result)  # a success: the pair stops
    d = s.draw_result(5)
    assert d.jobs == [] and d.pending == 0 and d.cancelled_by_source == {"S0.n00": 2}
    assert s.draw_result(5).cancelled_by_source == {}  # told once
