"""Pool sizing and the locality estimate: pure code, no Ray."""

import pytest

from nhr_ray.runtime.locality import chain_cross_node_bytes
from nhr_ray.runtime.sizing import PRIOR_GPU_S_PER_ATTEMPT, Rates, RoleSpec, SizingError, moves, plan, throughput, utilization


def test_water_filling_gives_gpus_in_proportion_to_demand():
    roles = {"editor": RoleSpec(1, 8.0), "prefilter": RoleSpec(1, 2.0)}
    assert plan([10], roles) == {"editor": 8, "prefilter": 2}
    assert throughput({"editor": 8, "prefilter": 2}, roles) == pytest.approx(1.0)
    assert utilization({"editor": 8, "prefilter": 2}, roles)["all"] == pytest.approx(1.0)


def test_four_nodes_of_four_gpus_with_a_four_gpu_prefilter_and_shared_small_roles():
    roles = {"t2i": RoleSpec(0.25, PRIOR_GPU_S_PER_ATTEMPT["t2i"]), "gate": RoleSpec(0.25, PRIOR_GPU_S_PER_ATTEMPT["gate"]),
             "editor": RoleSpec(1, PRIOR_GPU_S_PER_ATTEMPT["editor"]), "prefilter": RoleSpec(4, PRIOR_GPU_S_PER_ATTEMPT["prefilter"])}
    c = plan([4, 4, 4, 4], roles)
    assert c["prefilter"] == 1 and c["t2i"] >= 1 and c["gate"] >= 1
    # the editor gets every whole GPU left: 16 - 4 - one GPU shared by the small roles
    assert c["editor"] == 11
    assert sum(c[r] * s.gpus_per_actor for r, s in roles.items()) <= 16
    # the editor is the bottleneck, never starved by a small role
    x = throughput(c, roles)
    assert x == pytest.approx(11 / PRIOR_GPU_S_PER_ATTEMPT["editor"])
    assert utilization(c, roles)["editor"] == pytest.approx(1.0)


def test_even_split_is_worse_than_the_plan():
    roles = {r: RoleSpec(1 if r != "prefilter" else 4, d) for r, d in PRIOR_GPU_S_PER_ATTEMPT.items() if d > 0}
    even = {"t2i": 4, "gate": 4, "editor": 4, "prefilter": 1}
    c = plan([4, 4, 4, 4], roles)
    assert utilization(c, roles)["all"] > 2 * utilization(even, roles)["all"]


def test_actors_are_packed_per_node():
    # 3 free GPUs on each of two nodes: a 4-GPU actor cannot be placed, though 6 GPUs are free in all
    with pytest.raises(SizingError, match="roles.prefilter: 1 actor"):
        plan([3, 3], {"prefilter": RoleSpec(4, 2.0), "editor": RoleSpec(1, 8.0)})
    # big actors are placed first, so they find whole nodes
    c = plan([4, 2], {"editor": RoleSpec(1, 8.0, min_actors=2), "prefilter": RoleSpec(4, 2.0)})
    assert c == {"editor": 2, "prefilter": 1}


def test_fixed_roles_keep_their_count_and_zero_demand_roles_do_not_grow():
    roles = {"validator": RoleSpec(1, 0.0, min_actors=2, max_actors=2), "editor": RoleSpec(1, 8.0),
             "gate": RoleSpec(1, 0.0)}
    assert plan([8], roles) == {"validator": 2, "editor": 5, "gate": 1}


def test_rates_move_from_priors_to_measurements():
    r = Rates(prior={"editor": 8.0, "t2i": 0.1}, prior_weight=100)
    assert r.per_attempt()["editor"] == pytest.approx(8.0)
    r.observe({"editor": 10.0 * 10_000, "t2i": 0.3 * 10_000}, 10_000)
    pa = r.per_attempt()
    assert pa["editor"] == pytest.approx((800 + 100_000) / 10_100)
    assert pa["t2i"] == pytest.approx((10 + 3_000) / 10_100)
    # early on sources run ahead of edits: source roles are costed per job their sources created
    r.observe({"editor": 8.0 * 100, "t2i": 0.1 * 5_000}, 100, jobs_created=5_000)
    assert r.per_attempt()["t2i"] == pytest.approx(0.1)


def test_moves_only_when_the_gain_is_worth_it():
    roles = {"editor": RoleSpec(1, 8.0), "t2i": RoleSpec(1, 0.5)}
    assert moves({"editor": 7, "t2i": 1}, {"editor": 7, "t2i": 1}, roles) == {}
    # a plan of lower throughput is never taken (1.75 att/s instead of 1.875)
    assert moves({"editor": 15, "t2i": 1}, {"editor": 14, "t2i": 2}, roles) == {}
    # an actor started in a free GPU is taken for any gain (2.0 -> 2.03 att/s): nothing is retired for it
    assert moves({"editor": 16, "t2i": 1}, {"editor": 16, "t2i": 2}, {"editor": RoleSpec(1, 7.88), "t2i": RoleSpec(1, 0.5)}) == {"t2i": 1}
    # the pre-filter starved (2 GPU-s per attempt on 2 GPUs: 1 att/s) while editors could do 1.75
    big = {"editor": RoleSpec(1, 8.0), "t2i": RoleSpec(1, 2.0)}
    assert moves({"editor": 14, "t2i": 2}, {"editor": 13, "t2i": 3}, big) == {"editor": -1, "t2i": 1}


def test_cross_node_bytes_of_a_chain():
    # all on the driver's node: nothing crosses
    assert chain_cross_node_bytes("h", ["h", "h", "h", "h"], 100, 10) == 0
    # co-located on one worker: sources once, results back once
    assert chain_cross_node_bytes("h", ["a", "a", "a", "a"], 100, 10) == 110
    # spread over two workers: sources to each node, two hops between them, results back
    assert chain_cross_node_bytes("h", ["a", "b", "b", "a"], 100, 10) == 200 + 10 + 10 + 10


def test_tail_chunks_spread_the_last_jobs_over_the_editors():
    from nhr_ray.runtime.feeders import tail_chunks

    jobs = list(range(10))  # two pairs of M=5, drawn as one batch
    assert tail_chunks(jobs, pending_jobs=5000, editors=12) == [jobs]  # a deep queue: one chain, full batches
    assert tail_chunks([], 0, 12) == []
    # the last 10 jobs and 12 editors: one job per chain, so ten editors work at once, not one
    assert tail_chunks(jobs, pending_jobs=0, editors=12) == [[j] for j in jobs]
    # 10 drawn + 30 pending for 4 editors: chains of ceil(40 / 8) = 5, nothing lost or repeated
    chunks = tail_chunks(jobs, pending_jobs=30, editors=4)
    assert [len(c) for c in chunks] == [5, 5] and sum(chunks, []) == jobs
    assert tail_chunks(jobs, pending_jobs=0, editors=0) == [jobs[:5], jobs[5:]]  # none live yet: counted as one, two rounds


def test_fractions_are_packed_per_gpu_as_ray_places_them():
    # a node's total says five 0.75 actors fit in 4 GPUs; Ray puts a fraction on one GPU, so only four do,
    # each leaving a quarter that a 0.25 actor can use
    roles = {"editor": RoleSpec(0.75, 8.0), "prefilter": RoleSpec(0.25, 0.1)}
    assert plan([4], roles) == {"editor": 4, "prefilter": 4}
    assert plan([4, 4], {"editor": RoleSpec(0.75, 8.0)}) == {"editor": 8}
    # quarters fill a GPU before a new one is opened, so a whole-GPU actor still finds its GPUs
    c = plan([2], {"t2i": RoleSpec(0.25, 1.0, min_actors=2, max_actors=2), "editor": RoleSpec(1, 8.0)})
    assert c == {"t2i": 2, "editor": 1}
    with pytest.raises(SizingError, match="roles.editor: 2 actor"):
        plan([1.5], {"editor": RoleSpec(1, 8.0, min_actors=2)})


def test_free_gpus_are_filled_for_any_gain_and_swaps_need_min_gain():
    roles = {"editor": RoleSpec(0.5, 6.72), "prefilter": RoleSpec(0.5, 2.0)}
    # a closed role left a GPU free: two more editors raise throughput by ~2 %, below min_gain: taken
    assert moves({"editor": 23, "prefilter": 7}, {"editor": 25, "prefilter": 7}, roles, 0.05) == {"editor": 2}
    # a small gain (3.875 -> 4.0 att/s) by retiring an actor of one role for another: not worth the churn
    swap = {"editor": RoleSpec(1, 8.0), "t2i": RoleSpec(1, 0.25)}
    assert moves({"editor": 31, "t2i": 2}, {"editor": 32, "t2i": 1}, swap, 0.05) == {}
    # starting actors that add nothing: not taken either
    assert moves({"editor": 10, "prefilter": 1}, {"editor": 10, "prefilter": 2}, {"editor": RoleSpec(1, 8.0), "prefilter": RoleSpec(1, 0.5)}) == {}
