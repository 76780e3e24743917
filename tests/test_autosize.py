"""ray.autosize on a multi-node cluster: pools sized to the GPUs there are, re-balanced and let go at
the tail while the run goes on, and every job still accounted for, with the same triplets."""

import json

import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from conftest import small_config
from nhr_ray.runtime.pipeline import RunError, run
from test_faults_resume import SETS, triplets, uninterrupted

# re-balance often and on any gain, so a short run exercises retiring and starting actors
AUTO = {"ray.autosize": True, "ray.rebalance_every_s": 0.3, "ray.rebalance_min_gain": 0.0,
        "roles.t2i.num_gpus": 0.5, "roles.gate.num_gpus": 0.5, "sim.realtime_scale": 0.002}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    for _ in range(2):
        c.add_node(num_cpus=8, num_gpus=4)
    ray.init(address=c.address, logging_level="ERROR")
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def test_autosized_run_accounts_for_every_job(cluster, shared_run, tmp_path):
    ref = uninterrupted(shared_run)  # the same config, mined once per session (on whichever cluster)
    out = tmp_path / "auto"
    res = run(small_config(**SETS, **AUTO), out)
    m = res["manifest"]
    funnel = json.loads((out / "funnel.json").read_text())
    assert all(funnel["balanced"].values())
    ids = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["attempt_id"]).column("attempt_id").to_pylist()
    assert len(ids) == len(set(ids)) == m["scheduler"]["jobs_total"] == funnel["stages"]["edit"]["in"]
    assert triplets(out) == triplets(ref)
    # sized to the 8 GPUs: one 4-GPU pre-filter, the small roles sharing a GPU, editors on the rest
    held = m["gpu_hours"]["gpus_held"]
    assert sum(held.values()) == 0  # every actor let go at the tail
    reb = m["rebalancing"]
    assert any(e.get("closed") == "editor" for e in reb)


def test_autosize_refuses_roles_that_cannot_fit_on_any_node(cluster, tmp_path):
    with pytest.raises(RunError, match="roles.prefilter: each actor needs 6 GPUs on one node; the largest node has 4"):
        run(small_config(**SETS, **AUTO, **{"roles.prefilter.num_gpus": 6}), tmp_path / "nofit")
    with pytest.raises(RunError, match="ray.autosize: roles.validator: 1 actor"):
        run(small_config(**SETS, **AUTO, **{"roles.editor.num_gpus": 4, "roles.validator.num_gpus": 1}), tmp_path / "nofit2")


def test_time_shared_half_gpus_loading_two_at_a_time_give_the_same_triplets_and_actors_know_their_gpu(cluster, shared_run, tmp_path):
    from collections import Counter

    from nhr_ray.runtime.pool import Pool
    from nhr_ray.stages.edit import EditStage

    # half-GPU actors time-sliced on their GPU (sim.gpu_sharing), loading two at a time: where and
    # when work runs changes, not what it gives
    half = {"sim.gpu_sharing": "time_shared", "roles.editor.num_gpus": 0.5, "roles.prefilter.num_gpus": 0.5}
    ref, out = uninterrupted(shared_run), tmp_path / "shared"
    run(small_config(**SETS, **AUTO, **half, **{"ray.max_starting_actors": 2}), out)
    assert triplets(out) == triplets(ref)
    # each actor's stage is told its GPU as "<node id>/<GPU id>"; two halves at most per GPU
    pool = Pool("editor", EditStage, small_config(**half), 5, 0.5, 0.1)
    try:
        nodes = ray.get(pool.setup())
        devices = [ray.get(a.__ray_call__.remote(lambda self: self.stage.device)) for a in pool.handles()]
        assert all(d.split("/")[0] == n and d.split("/")[1].isdigit() for d, n in zip(devices, nodes))
        assert max(Counter(devices).values()) <= 2
    finally:
        pool.shutdown()


def test_starter_loads_k_actors_at_once_in_pipeline_order(cluster):
    import time

    from nhr_ray.runtime.pool import Pool
    from nhr_ray.runtime.starter import Starter
    from nhr_ray.stages.edit import EditStage
    from nhr_ray.stages.lowlevel import LowLevelStage
    from nhr_ray.stages.sources import SourceStage

    cfg = small_config()
    starter = Starter(1)
    pools = [Pool("t2i", SourceStage, cfg, 2, 0.5, 0.1, starter=starter),
             Pool("editor", EditStage, cfg, 3, 1, 0.1, starter=starter),
             Pool("cpu", LowLevelStage, cfg, 2, 0, 0.1, starter=starter)]
    try:
        # one actor loads; the others wait, yet hold their GPUs in every count
        assert [sum(a is not None for a in p.handles()) for p in pools] == [1, 0, 0]
        assert [p.n_held for p in pools] == [2, 3, 2] and pools[1].gpus_held() == 3
        assert pools[1].capacity(2) == 0  # nothing created: no call goes to an actor not started
        deadline = time.monotonic() + 120
        while any(a is None for p in pools for a in p.handles()):
            assert starter.loading() <= 1
            starter.pump()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # the first of each role in pipeline order, then the role with the smallest share started
        assert [r for r, _ in starter.started] == ["t2i", "editor", "cpu", "editor", "t2i", "cpu", "editor"]
        ray.get([ref for p in pools for ref in p.setup()])
        # a pool whose actors all wait gets one past the limit when a call must go somewhere
        late = Pool("gate", SourceStage, cfg, 2, 0.5, 0.1, starter=Starter(0))  # nothing may load
        assert late.handles() == [None, None] and late.starter.pump() == 0
        i, ref = late.run([])  # a call with no actor to go to
        assert ray.get(ref) and late.handles()[i] is not None and late.handles()[1 - i] is None
        # retired while waiting: never created, and no longer held
        late.retire(1)
        assert late.reap() == 1 and late.n_held == 1 and late.handles()[1 - i] is None
        late.shutdown()
    finally:
        for p in pools:
            p.shutdown()
