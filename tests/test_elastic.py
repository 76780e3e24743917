"""ray.elastic: role pools that grow while their queue is backed up and shrink when idle, asking the
autoscaler for exactly the resources they hold. Real actors on a local Ray cluster; what the
autoscaler was asked is read back from where Ray stores it (the GCS key its v1 monitor reads)."""

import json
import threading
import time

import pyarrow.parquet as pq
import pytest
import ray
from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
from ray.experimental.internal_kv import _internal_kv_get

from conftest import small_config
from nhr_ray.config import ConfigError, load_config
from nhr_ray.runtime.pool import Pool
from nhr_ray.runtime.elastic import Elastic
from nhr_ray.runtime.pipeline import RunError, run
from nhr_ray.scheduler.actor import SchedulerActor
from nhr_ray.stages.edit import EditStage
from test_faults_resume import SETS, triplets, uninterrupted


def requested() -> list[dict]:
    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else []


def gpus(bundles: list[dict]) -> float:
    return sum(b.get("GPU", 0.0) for b in bundles)


def wait_ready(pool: Pool, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.n_ready_live < n:
        assert time.monotonic() < deadline, f"{pool.role}: {pool.n_ready_live} of {n} actors ready"
        pool.refresh_nodes()
        time.sleep(0.05)


def test_pool_grows_when_backed_up_and_shrinks_when_idle(ray_local):
    cfg = small_config(**{"ray.elastic": True, "roles.editor.actors": 1, "roles.editor.max_actors": 3,
                          "ray.elastic_sustain_s": 0.0, "ray.elastic_idle_s": 0.3, "ray.elastic_grow_at": 2})
    pool = Pool("editor", EditStage, cfg, 1, 1.0, 0.25, "elastic-test")
    wait_ready(pool, 1)
    sched = SchedulerActor.remote(run_seed=0, attempts_per_pair=5)
    el = Elastic(cfg, {"editor": pool}, sched)
    try:
        el.tick({}, {"editor": 1.0})  # under 2 batches per actor: not backed up
        assert pool.n_live == 1 and gpus(requested()) == 1
        el.tick({}, {"editor": 10.0})
        assert pool.n_live == 2 and gpus(requested()) == 2  # asked for what it now holds
        el.tick({}, {"editor": 10.0})
        assert pool.n_live == 2, "grew again before the new actor had loaded"
        wait_ready(pool, 2)
        el.tick({}, {"editor": 10.0})
        assert pool.n_live == 3  # doubling, capped at max_actors
        wait_ready(pool, 3)
        el.tick({}, {"editor": 100.0})
        assert pool.n_live == 3 and gpus(requested()) == 3
        # every actor works a batch (that resets its idle clock); then the queue empties: after
        # idle_s every actor but one is let go, and the request follows
        calls = [pool.run([], {}, actor=i) for i in range(3)]
        ray.get([ref for _, ref in calls])
        for i, _ in calls:
            pool.done(i)
        el.tick({}, {"editor": 0.0})
        assert pool.n_live == 3
        time.sleep(0.4)
        el.tick({}, {"editor": 0.0})
        assert pool.n_live == 1 and pool.n_held == 1 and pool.gpus_held() == 1
        assert requested() == [{"CPU": 0.25, "GPU": 1.0}]
        kinds = [("grow" in e, "shrink" in e) for e in el.events]
        assert kinds == [(True, False), (True, False), (False, True)]
        # a busy actor is never idle, whatever its queue says
        i, ref = pool.run([], {})
        time.sleep(0.4)
        assert pool.idle_actors(time.monotonic(), 0.3) == []
        ray.get(ref)
        pool.done(i)
    finally:
        pool.shutdown()
        ray.kill(sched)


def test_growth_stops_at_the_autoscalers_limit(ray_local):
    cfg = small_config(**{"ray.elastic": True, "roles.editor.max_actors": 8, "ray.autoscaling_max_gpus": 3,
                          "ray.elastic_sustain_s": 0.0})
    pools = {"editor": Pool("editor", EditStage, cfg, 2, 1.0, 0.25, "elastic-limit")}
    wait_ready(pools["editor"], 2)
    sched = SchedulerActor.remote(run_seed=0, attempts_per_pair=5)
    el = Elastic(cfg, pools, sched)
    try:
        el.tick({}, {"editor": 50.0})
        assert pools["editor"].n_live == 3 and gpus(requested()) == 3  # 2 + min(doubling, 1 GPU left)
        wait_ready(pools["editor"], 3)
        el.tick({}, {"editor": 50.0})
        assert pools["editor"].n_live == 3
    finally:
        pools["editor"].shutdown()
        ray.kill(sched)


ELASTIC = {"ray.elastic": True, "roles.editor.actors": 1, "roles.editor.max_actors": 6, "roles.prefilter.num_gpus": 1,
           "roles.prefilter.max_actors": 3, "ray.elastic_sustain_s": 0.3, "ray.elastic_idle_s": 1.0,
           "sim.realtime_scale": 0.004}


def test_elastic_run_grows_its_pools_and_mines_the_same_triplets(ray_local, shared_run, tmp_path):
    ref = uninterrupted(shared_run)  # fixed pools, the same config, mined once per session
    seen: list[float] = []
    stop = threading.Event()

    def watch():  # what the autoscaler is asked for while the run goes on
        while not stop.is_set():
            seen.append(gpus(requested()))
            stop.wait(0.1)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    out = tmp_path / "elastic"
    try:
        res = run(small_config(**SETS, **ELASTIC), out)
    finally:
        stop.set()
        w.join()
    m = res["manifest"]
    grew = [e for e in m["rebalancing"] if e.get("role") == "editor" and "grow" in e]
    assert grew and all(e["waiting_batches"] >= 2 for e in grew)
    assert m["pools"]["editor"]["actors_started"] > 1
    # the request rose above the starting pools (t2i 1, gate 1, editor 1, pre-filter 1) and was
    # cleared at the end
    assert max(seen) > 4 and requested() == []
    assert sum(m["gpu_hours"]["gpus_held"].values()) == 0
    funnel = json.loads((out / "funnel.json").read_text())
    assert all(funnel["balanced"].values())
    ids = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["attempt_id"]).column("attempt_id").to_pylist()
    assert len(ids) == len(set(ids)) == m["scheduler"]["jobs_total"]
    assert triplets(out) == triplets(ref)  # pool sizes change where work runs, never what it gives


def test_elastic_config_errors(ray_local, tmp_path):
    with pytest.raises(ConfigError, match="max_actors \\(1\\) is below actors \\(2\\)"):
        load_config(overrides=["roles.editor.actors=2", "roles.editor.max_actors=1"])
    with pytest.raises(ConfigError, match="elastic and autosize both size the pools"):
        load_config(overrides=["ray.elastic=true", "ray.autosize=true"])
    # 1 + 1 + 14 + 4 GPUs once grown: more than the 16 this cluster has, refused before any work
    with pytest.raises(RunError, match="the role pools need 20 GPUs when grown to their max_actors .*editor 14x1"):
        run(small_config(**{"ray.elastic": True, "roles.editor.max_actors": 14}), tmp_path / "never")
    assert not (tmp_path / "never" / "data").exists() or not any((tmp_path / "never" / "data").iterdir())
