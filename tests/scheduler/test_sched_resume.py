"""A queue rebuilt after a restart (with or without a checkpoint): the cost estimate never comes from
work the record already holds and is never 0; recorded jobs are never drawn again; their results
reach the policy."""

import math

import pytest

from nhr_ray.scheduler import JobScheduler
from nhr_ray.scheduler.core import MIN_ESTIMATE_SHARE

CATS = ["removal", "addition", "colour_change", "replacement", "style"]
COST = {"edit": ("editor", 9.0), "prefilter": ("prefilter", 1.0)}


def _fill(s, n=30, k=3):
    for i in range(n):
        s.add_source(f"S{i:06d}.n00", [CATS[(i + j) % 5] for j in range(k)])


def _drain(s, n=16):
    out = []
    while True:
        jobs = s.draw(n)
        if not jobs:
            return out
        out += [j.attempt_id for j in jobs]
        for j in jobs:
            s.complete(j.attempt_id, COST, None)


@pytest.mark.parametrize("unit", ["job", "pair"])
def test_jobs_completed_without_cost_never_make_the_estimate_zero(unit):
    """The issue's crash: a restarted run drew jobs the record held and completed them at no cost;
    after eight the mean cost was 0 and the next draw divided by it. Jobs that cost nothing
    (re-completed, or failed before any GPU work) are counted as done but never measured."""
    s = JobScheduler(11, 5, unit, budget_gpu_hours=1_000_000.0, prior_job_cost=10.8)
    _fill(s)
    for _ in range(4):
        for j in s.draw(8):
            s.complete(j.attempt_id, {}, None)
    assert s.stats()["jobs_completed"] >= 32
    assert s.estimate() == pytest.approx(10.8)  # nothing measured: the prior
    assert len(s.draw(8)) > 0  # the draw that raised ZeroDivisionError


def test_estimate_is_measured_from_live_jobs_only_and_floored():
    s = JobScheduler(3, 5, "job", budget_gpu_hours=100.0, prior_job_cost=10.0)
    _fill(s)
    record = [(f"S{i:06d}.n00.i0.m{a}", {"edit": ("editor", 1000.0)}) for i in range(10) for a in range(5)]
    assert s.resume_done(record)["taken"] == 50
    assert s.estimate() == 10.0  # recorded costs are paid, not measured
    assert s.stats()["ledger"]["busy_gpu_seconds"] == pytest.approx(50_000.0)
    for j in s.draw(8):
        s.complete(j.attempt_id, {"edit": ("editor", 4.0)}, None)
    assert s.estimate() == pytest.approx(4.0)
    for j in s.draw(64):  # absurdly cheap measurements: floored above 0, so every division is finite
        s.complete(j.attempt_id, {"edit": ("editor", 1e-300)}, None)
    assert s.estimate() >= 10.0 * MIN_ESTIMATE_SHARE > 0
    assert math.isfinite(s.budget_left_s / s.estimate())


def test_a_queue_rebuilt_from_the_record_never_draws_a_recorded_job_and_pays_it_once():
    whole = JobScheduler(5, 3, "job", prior_job_cost=10.0)
    _fill(whole)
    everything = set(_drain(whole))
    first = JobScheduler(5, 3, "job", prior_job_cost=10.0)
    _fill(first)
    part = [j.attempt_id for j in first.draw(40)]  # recorded before the crash (no checkpoint)

    again = JobScheduler(5, 3, "job", prior_job_cost=10.0)
    _fill(again)
    assert again.resume_done([(a, COST) for a in part]) == {"taken": 40, "counted_before": 0, "unknown": 0}
    assert again.requeue_unrecorded() == 0  # nothing to redo on a rebuilt queue
    rest = _drain(again)
    assert not set(rest) & set(part) and set(rest) | set(part) == everything
    st = again.stats()
    assert st["jobs_taken_from_record"] == 40 and st["jobs_drawn_again_recorded"] == 0
    assert st["ledger"]["busy_gpu_seconds"] == pytest.approx(10.0 * len(everything))


def test_a_recorded_job_of_a_source_not_queued_yet_leaves_the_queue_when_the_source_comes():
    """Its source's row was still buffered at the crash: the source is made again later."""
    s = JobScheduler(5, 2, "job", prior_job_cost=10.0)
    _fill(s, n=3)
    out = s.resume_done([("S000099.n00.i1.m0", COST, {"category": "addition", "validator_pass": True})])
    assert out["unknown"] == 1
    assert s.stats()["ledger"]["busy_gpu_seconds"] == pytest.approx(10.0)  # paid now: it was spent
    s.add_source("S000099.n00", ["removal", "addition"])
    drawn = _drain(s)
    assert "S000099.n00.i1.m0" not in drawn and "S000099.n00.i1.m1" in drawn
    assert s.stats()["jobs_taken_from_record"] == 1 and s.stats()["per_category"]["validator_pass"]["addition"] == 1


def test_recorded_results_reach_the_policy():
    """until_first_success: a pair whose recorded attempt passed gets no more attempts after a restart."""
    opts = {"stop_on": "validator"}
    s = JobScheduler(5, 4, "job", policy="until_first_success", policy_options=opts, prior_job_cost=10.0)
    _fill(s, n=4, k=1)
    win = {"category": "removal", "prefilter_pass": True, "validator_pass": True, "reason": "ok", "score": 4.9}
    s.resume_done([("S000000.n00.i0.m2", COST, win)])
    drawn = _drain(s)
    assert not any(a.startswith("S000000.n00.i0.") for a in drawn)
    assert s.stats()["pairs_stopped"]["succeeded"] == 1


def test_measured_costs_survive_a_checkpoint(tmp_path):
    s = JobScheduler(3, 5, "job", budget_gpu_hours=10.0, prior_job_cost=10.0, config_hash="h")
    _fill(s)
    for j in s.draw(10):
        s.complete(j.attempt_id, {"edit": ("editor", 3.0)}, None)
    s.save(tmp_path / "c.npz")
    r = JobScheduler.open(tmp_path / "c.npz", 3, 5, "job", budget_gpu_hours=20.0, prior_job_cost=10.0, config_hash="h")
    assert r.estimate() == pytest.approx(3.0)
    assert r.stats()["budget_gpu_hours"] == 20.0  # the budget is the caller's, not the checkpoint's
