"""Budget on two clocks, ledger breakdown, atomic checkpoints that resume the same permutation."""

import numpy as np
import pytest

from nhr_ray.scheduler import CheckpointError, JobScheduler

CATS = ["removal", "addition", "colour_change", "replacement", "style"]


def _fill(s, n=50, k=3):
    for i in range(n):
        s.add_source(f"S{i:06d}.n00", [CATS[(i + j) % 5] for j in range(k)])


def test_busy_budget_stops_within_one_job_and_ledger_breaks_down():
    s = JobScheduler(1, 5, budget_gpu_hours=100 * 10 / 3600, prior_job_cost=10.0)  # 100 jobs of 10 s
    _fill(s)
    s.charge("t2i", "sources", 50.0)
    issued = 0
    while True:
        jobs = s.draw(16)
        if not jobs:
            break
        issued += len(jobs)
        for j in jobs:
            s.complete(j.attempt_id, {"edit": ("editor", 9.0), "prefilter": ("prefilter", 1.0)}, None)
    st = s.stats()
    assert issued == 95  # 50 GPU-s of sources + 95 x 10 = the budget, to the job
    assert st["budget_exhausted"] and st["jobs_in_flight"] == 0
    led = st["ledger"]
    assert led["by_role_gpu_hours"] == pytest.approx({"editor": 95 * 9 / 3600, "prefilter": 95 / 3600, "t2i": 50 / 3600})
    assert set(led["by_stage_gpu_hours"]) == {"edit", "prefilter", "sources"}


def test_inflight_estimates_hold_budget():
    s = JobScheduler(1, 5, budget_gpu_hours=30 * 10 / 3600, prior_job_cost=10.0)
    _fill(s)
    assert len(s.draw(1000)) == 30 and s.draw(5) == [] and s.exhausted()


def test_reserved_clock_with_injected_time():
    now = [0.0]
    s = JobScheduler(1, 5, budget_gpu_hours=1.0, budget_clock="reserved", clock=lambda: now[0])
    _fill(s)
    s.set_reserved({"editor": 2, "prefilter": 2})
    now[0] = 450.0  # 4 GPUs x 450 s = 0.5 GPU-h
    assert not s.exhausted()
    st = s.stats()
    assert st["ledger"]["reserved_gpu_hours"] == pytest.approx(0.5)
    assert st["ledger"]["reserved_by_role_gpu_hours"]["editor"] == pytest.approx(0.25)
    s.set_reserved(8)
    now[0] = 675.0  # + 8 x 225 s = 0.5 GPU-h
    assert s.exhausted() and s.draw(4) == []
    b = JobScheduler(1, 5, budget_gpu_hours=1.0, budget_clock="busy", clock=lambda: now[0])
    _fill(b)
    assert not b.exhausted() and len(b.draw(4)) == 4


@pytest.mark.parametrize("bad", [0, -1.0])
def test_bad_budget_is_an_error(bad):
    with pytest.raises(ValueError, match="budget"):
        JobScheduler(1, 5, budget_gpu_hours=bad)


def _run(s, steps, rng_seed=5):
    out = []
    rng = np.random.default_rng(rng_seed)
    for _ in range(steps):
        jobs = s.draw(int(rng.integers(1, 12)))
        out += [j.attempt_id for j in jobs]
        for j in jobs:
            s.complete(j.attempt_id, {"edit": ("editor", 10.0)}, {"category": "removal", "prefilter_pass": False})
    return out


def test_restart_continues_the_same_permutation(tmp_path):
    ref = JobScheduler(3, 4, budget_gpu_hours=10.0, config_hash="abc")
    _fill(ref)
    whole = _run(ref, 10) + _run(ref, 10, rng_seed=6)

    s = JobScheduler(3, 4, budget_gpu_hours=10.0, config_hash="abc")
    _fill(s)
    first = _run(s, 10)
    s.save(tmp_path / "scheduler.npz")
    r = JobScheduler.open(tmp_path / "scheduler.npz", 3, 4, budget_gpu_hours=10.0, config_hash="abc")
    assert r.stats()["spent_gpu_hours"] == pytest.approx(len(first) * 10 / 3600)  # spent budget carried over
    assert first + _run(r, 10, rng_seed=6) == whole
    assert r.stats()["spent_gpu_hours"] == pytest.approx(len(whole) * 10 / 3600)


def test_inflight_jobs_go_back_to_the_queue(tmp_path):
    s = JobScheduler(3, 2, config_hash="abc")
    _fill(s, n=20, k=2)
    done = [j.attempt_id for j in s.draw(15)]
    for a in done:
        s.complete(a, {"edit": ("editor", 1.0)})
    lost = [j.attempt_id for j in s.draw(7)]  # in flight when the run dies
    s.save(tmp_path / "c.npz")
    r = JobScheduler.open(tmp_path / "c.npz", 3, 2, config_hash="abc")
    assert r.stats()["jobs_requeued_after_restart"] == 7
    rest = []
    while r.pending():
        rest += [j.attempt_id for j in r.draw(9)]
    assert set(lost) <= set(rest)
    assert sorted(done + rest) == sorted({f"S{i:06d}.n00.i{j}.m{a}" for i in range(20) for j in range(2) for a in range(2)})
    r.complete(lost[0], {"edit": ("editor", 1.0)})
    r.complete(lost[0], {"edit": ("editor", 1.0)})  # a duplicate report is counted, not trusted
    assert r.stats()["unknown_completions"] == 1


def test_foreign_and_corrupted_checkpoints_are_refused(tmp_path):
    s = JobScheduler(3, 2, config_hash="abc")
    _fill(s, n=5)
    p = tmp_path / "c.npz"
    s.save(p)
    for kwargs, what in [({"config_hash": "xyz"}, "config_hash"), ({"config_hash": "abc", "unit": "pair"}, "unit")]:
        with pytest.raises(CheckpointError, match=what):
            JobScheduler.open(p, 3, 2, **kwargs)
    with pytest.raises(CheckpointError, match="run_seed"):
        JobScheduler.open(p, 4, 2, config_hash="abc")
    other = JobScheduler(4, 2, config_hash="abc")
    with pytest.raises(CheckpointError, match="another run"):
        other.save(p)  # never silently overwritten
    data = bytearray(p.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        JobScheduler.open(p, 3, 2, config_hash="abc")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        JobScheduler.open(tmp_path / "junk.npz", 3, 2, config_hash="abc")
    np.savez(tmp_path / "alien.npz", header=np.frombuffer(b'{"magic": "other"}', np.uint8))
    with pytest.raises(CheckpointError, match="wrong magic"):
        JobScheduler.open(tmp_path / "alien.npz", 3, 2)
    assert not list(tmp_path.glob(".*tmp*"))


def test_resume_done_reconciles_a_checkpoint_with_the_record(tmp_path):
    """A run's record (Parquet) knows jobs the checkpoint did not see finish: those leave the
    restored queue and are paid once; jobs finished before the checkpoint are not paid twice."""
    cost = {"edit": ("editor", 10.0)}
    s = JobScheduler(7, 5, prior_job_cost=10.0)
    _fill(s, n=20)
    before = s.draw(6)  # finished before the checkpoint
    for j in before:
        s.complete(j.attempt_id, cost, None)
    flying = s.draw(4)  # in flight when the checkpoint is written
    s.save(tmp_path / "ck.npz")
    after = s.draw(5)  # drawn after the checkpoint; with `flying`, finished before the crash
    record = [(j.attempt_id, cost) for j in before + flying + after]

    r = JobScheduler(7, 5, prior_job_cost=10.0)
    r.load(tmp_path / "ck.npz")
    assert r.pending() == 300 - 6  # in-flight jobs went back to the queue
    # two jobs finished before the checkpoint never reached the record (their rows were buffered)
    lost = {before[0].attempt_id, before[1].attempt_id}
    kept = [x for x in record if x[0] not in lost]
    out = r.resume_done(kept + [("S999999.n00.i0.m0", cost)])
    assert out == {"taken": 9, "counted_before": 4, "unknown": 1}
    assert r.pending() == 300 - 15
    assert r.requeue_unrecorded() == 2  # ... so they are done again
    assert r.pending() == 300 - 13
    st = r.stats()
    assert st["jobs_completed"] == 13 and st["jobs_redone_unrecorded"] == 2
    # paid once each so far: 6 before the checkpoint, 9 after it, and the one whose source is not queued
    assert st["ledger"]["busy_gpu_seconds"] == pytest.approx(60.0 + 90.0 + 10.0)
    # the rest of the queue, drawn to the end: the two lost jobs and every job never done, once each
    rest = []
    while True:
        jobs = r.draw(64)
        if not jobs:
            break
        rest += [j.attempt_id for j in jobs]
    assert len(rest) == len(set(rest)) == 287 and lost <= set(rest) and not set(rest) & {a for a, _ in kept}
