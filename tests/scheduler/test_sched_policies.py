"""Policies: early stops with late results counted as wasted, per-category M, weakness weights."""

import numpy as np
import pytest

from nhr_ray.scheduler import POLICIES, JobScheduler

CATS = ["removal", "addition", "colour_change", "replacement", "style"]
COST = {"edit": ("editor", 10.0)}


def res(cat="removal", pre=False, val=False, reason="low_scores", score=3.0):
    return {"category": cat, "prefilter_pass": pre, "validator_pass": val, "reason": reason, "score": score}


def test_registry_and_unknown_policy():
    assert set(POLICIES) == {"uniform", "per_category_m", "until_first_success", "weakness", "adaptive"}
    with pytest.raises(ValueError, match="unknown policy"):
        JobScheduler(0, 5, policy="greedy")
    with pytest.raises(ValueError, match="unknown categories"):
        JobScheduler(0, 5, policy="per_category_m", policy_options={"attempts": {"sky": 2}})
    with pytest.raises(ValueError, match="needs unit 'job'"):
        JobScheduler(0, 5, unit="pair", policy="adaptive")
    with pytest.raises(ValueError, match="stop_on"):
        JobScheduler(0, 5, policy="until_first_success", policy_options={"stop_on": "human"})


def test_until_first_success_cancels_and_counts_late_results_as_wasted():
    s = JobScheduler(0, 5, policy="until_first_success")
    s.add_source("S000000.n00", ["removal"])
    jobs = s.draw(5)  # all 5 attempts of the pair in flight at once
    s.complete(jobs[0].attempt_id, COST, res(pre=True))
    for j in jobs[1:]:
        s.complete(j.attempt_id, COST, res(pre=True))
    st = s.stats()
    assert st["jobs_wasted"] == 4 and st["wasted_gpu_hours"] == pytest.approx(40 / 3600)
    assert st["pairs_stopped"]["succeeded"] == 1 and st["jobs_cancelled"] == 0

    s = JobScheduler(0, 5, policy="until_first_success", policy_options={"stop_on": "validator"})
    s.add_source("S000000.n00", ["removal"])
    j = s.draw(1)[0]
    s.complete(j.attempt_id, COST, res(pre=True))  # the pre-filter is not enough here
    assert s.pending() == 4
    j = s.draw(1)[0]
    s.complete(j.attempt_id, COST, res(pre=True, val=True))
    assert s.pending() == 0 and s.stats()["jobs_cancelled"] == 3 and s.draw(5) == []
    assert s.drain_cancelled() == {"S000000.n00": 3} and s.drain_cancelled() == {}  # the driver frees the image
    assert s.stats()["jobs_total"] == 5


def test_per_category_m():
    s = JobScheduler(0, 5, policy="per_category_m", policy_options={"attempts": {"style": 2, "removal": 9}})
    s.add_source("S000000.n00", ["removal", "style", "addition"])
    ids = [j.attempt_id for j in s.draw(100)]
    assert len(ids) == 9 + 2 + 5
    assert {a for a in ids if ".i1." in a} == {"S000000.n00.i1.m0", "S000000.n00.i1.m1"}


def test_adaptive_gives_up_on_vague_and_low_scores_and_stops_at_success():
    s = JobScheduler(0, 6, policy="adaptive", policy_options={"strikes": 1, "low_streak": 2, "low_score": 3.0})
    s.add_source("S000000.n00", ["removal", "addition", "style"])
    by_pair = {}
    for j in s.draw(100):
        by_pair.setdefault(j.pair_id, []).append(j.attempt_id)
    assert s.pending() == 0  # all 18 in flight: a stop then saves nothing, and late results are waste
    for a in by_pair["S000000.n00.i0"]:
        s.complete(a, COST, res(reason="unwanted_change"))
    assert s.stats()["jobs_wasted"] == 5 and s.stats()["pairs_stopped"]["gave_up_vague"] == 1
    s2 = JobScheduler(0, 6, policy="adaptive", policy_options={"strikes": 1, "low_streak": 2, "low_score": 3.0})
    s2.add_source("S000000.n00", ["removal", "addition", "style"])
    drawn = {}
    for _ in range(3 * 6):
        for j in s2.draw(1):
            drawn.setdefault(j.pair_id, []).append(j)
            i = j.instruction_index
            r = [res(reason="unwanted_change", score=4.0), res(score=2.0), res(pre=True, score=4.5)][i]
            s2.complete(j.attempt_id, COST, r)
    st = s2.stats()
    assert st["pairs_stopped"] == {"succeeded": 1, "gave_up_vague": 1, "gave_up_low_scores": 1}
    assert [len(drawn[f"S000000.n00.i{i}"]) for i in range(3)] == [1, 2, 1]
    assert st["jobs_cancelled"] == 18 - 4 and st["jobs_wasted"] == 0


def test_adaptive_threshold_from_measured_scores():
    s = JobScheduler(0, 2, policy="adaptive",
                     policy_options={"low_score_quantile": 0.5, "min_observations": 50, "low_streak": 7})  # fmt: skip
    for i in range(200):
        s.add_source(f"S{i:06d}.n00", ["removal"])
    rng = np.random.default_rng(0)
    for j in s.draw(100):
        s.complete(j.attempt_id, COST, res(score=float(rng.uniform(3.0, 4.0))))
    assert 3.35 < s.stats()["policy_report"]["low_score_threshold"] < 3.65


def test_weakness_draws_more_where_success_is_rare():
    s = JobScheduler(0, 5, policy="weakness", policy_options={"explore_floor": 0.1})
    for i in range(2000):
        s.add_source(f"S{i:06d}.n00", ["removal", "style"])
    for j in s.draw(2000):  # removal succeeds 50 %, style 5 %
        cat = "removal" if j.instruction_index == 0 else "style"
        ok = (j.seed % 100) < (50 if cat == "removal" else 5)
        s.complete(j.attempt_id, COST, res(cat=cat, pre=ok, val=ok))
    before = s.cat_stats["issued"].copy()
    s.draw(4000)
    mix = s.cat_stats["issued"] - before
    assert mix[4] > 3 * mix[0]  # style (index 4) gets most draws now
    rep = s.stats()["policy_report"]
    assert rep["weights"]["style"] == 1.0 and rep["weights"]["removal"] >= 0.1
    assert set(rep["issued_mix"]) == set(CATS)


def test_adaptive_can_watch_adherence_instead_of_the_geometric_score():
    opts = {"strikes": 3, "low_streak": 1, "low_score": 2.0, "score_field": "adherence"}
    s = JobScheduler(0, 4, policy="adaptive", policy_options=opts)
    s.add_source("S000000.n00", ["removal", "addition"])
    seen = {}
    for _ in range(8):
        for j in s.draw(1):
            seen.setdefault(j.instruction_index, 0)
            seen[j.instruction_index] += 1
            # pair 0: adherence 1.5 (hopeless) but a middling geometric score; pair 1: adherence 3.0
            r = res(score=3.2)
            r["adherence"] = 1.5 if j.instruction_index == 0 else 3.0
            s.complete(j.attempt_id, COST, r)
    assert seen == {0: 1, 1: 4}
    assert s.stats()["pairs_stopped"]["gave_up_low_scores"] == 1
