"""The scheduler actor on a real local Ray cluster: batched draws, completions, kill and resume."""

import os

import pytest

ray = pytest.importorskip("ray")

from nhr_ray.scheduler.actor import start_scheduler_actor  # noqa: E402

CATS = ["removal", "addition", "colour_change", "replacement", "style"]


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():  # the suite's shared cluster (conftest.ray_local), left up by an earlier module
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_actor_batches_kill_and_resume(cluster, tmp_path):
    path = str(tmp_path / "scheduler.npz")
    kw = dict(budget_gpu_hours=None, config_hash="h", checkpoint_path=path, checkpoint_every_s=3600)
    a = start_scheduler_actor(7, 3, **kw)
    ray.get(a.add_sources.remote([(f"S{i:06d}.n00", CATS[: 1 + i % 5]) for i in range(40)]))
    total = sum(3 * (1 + i % 5) for i in range(40))
    seen = []
    batch = ray.get(a.draw_batch.remote(50))
    jobs = batch.jobs()  # built on the worker's side
    seen += [j.attempt_id for j in jobs]
    ray.get(a.complete_batch.remote([(j.attempt_id, {"edit": ("editor", 8.0)}, None) for j in jobs]))
    ray.get(a.checkpoint.remote())
    d = ray.get(a.draw.remote(20))  # in flight, lost with the actor
    in_flight = [j.attempt_id for j in d.jobs]
    assert d.stats["jobs_in_flight"] == 20 and d.pending == total - 70 and not d.exhausted
    ray.kill(a)

    b = start_scheduler_actor(7, 3, **kw)
    st = ray.get(b.stats.remote())
    assert st["jobs_completed"] == 50 and st["ledger"]["busy_gpu_seconds"] == pytest.approx(400.0)
    assert st["jobs_pending"] == total - 50
    while True:
        got = ray.get(b.draw_batch.remote(64)).jobs()
        if not got:
            break
        seen += [j.attempt_id for j in got]
    assert len(seen) == len(set(seen)) == total and set(in_flight) <= set(seen)
