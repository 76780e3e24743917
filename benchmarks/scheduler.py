"""Scheduler speed and memory at paper scale; prints JSON as its last line.

For 1M and 10M edit jobs (M = 5 attempts, 4 instructions per source image, 5 categories), built by
streaming sources in chunks of 1,000:
  draws_per_s        in-process draws, batches of 1,000 (job keys; the runtime's fast path)
  jobs_per_s         in-process draw(1000) building Job rows (ids and seeds, pure Python)
  actor_draws_per_s  through the Ray actor, draw_batch(10,000) round trips (JobBatch arrays)
  bytes_per_pair     every array of the job space, allocated capacity, per (image, instruction) pair
  checkpoint_s / restore_s   atomic .npz write with fsync / load into a fresh scheduler
and the same for a naive baseline: a materialised, shuffled Python list of job ints popped from the
end (memory counted as the list plus its int objects; checkpoint = the list to an int64 file).

    python benchmarks/scheduler.py [--sizes 1000000 10000000] [--no-actor]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nhr_ray.scheduler import JobScheduler

CATS = ["removal", "addition", "colour_change", "replacement", "style"]
M, K = 5, 4


def build(jobs: int) -> JobScheduler:
    s = JobScheduler(0, M, budget_gpu_hours=None, config_hash="bench")
    sources = jobs // (M * K)
    rng = np.random.default_rng(0)
    for lo in range(0, sources, 1000):
        ids = [f"S{i // 10:06d}.n{i % 10:02d}" for i in range(lo, min(sources, lo + 1000))]
        cats = rng.integers(0, 5, (len(ids), K))
        s.add_sources(ids, [[CATS[c] for c in row] for row in cats])
    return s


def bench_ours(jobs: int, tmp: Path, actor: bool) -> dict:
    t = time.perf_counter()
    s = build(jobs)
    out = {"build_s": round(time.perf_counter() - t, 3), "pairs": s.space.n_pairs}
    out["bytes_per_pair"] = round(s.space.nbytes() / s.space.n_pairs, 2)
    path = tmp / f"sched-{jobs}.npz"
    t = time.perf_counter()
    s.save(path)
    out["checkpoint_s"] = round(time.perf_counter() - t, 3)
    out["checkpoint_mb"] = round(path.stat().st_size / 2**20, 1)
    t = time.perf_counter()
    JobScheduler.open(path, 0, M, budget_gpu_hours=None, config_hash="bench")
    out["restore_s"] = round(time.perf_counter() - t, 3)
    n, batches = 0, 300
    t = time.perf_counter()
    for _ in range(batches):
        n += len(s.draw_keys(1000))
    out["draws_per_s"] = round(n / (time.perf_counter() - t))
    t = time.perf_counter()
    n = sum(len(s.draw(1000)) for _ in range(20))
    out["jobs_per_s"] = round(n / (time.perf_counter() - t))
    if actor:
        out.update(bench_actor(path))
    return out


def bench_actor(path: Path) -> dict:
    import ray

    from nhr_ray.scheduler.actor import start_scheduler_actor

    a = start_scheduler_actor(0, M, budget_gpu_hours=None, config_hash="bench", checkpoint_path=str(path), checkpoint_every_s=1e9)
    ray.get(a.pending.remote())  # restored from the checkpoint
    res = {}
    for bs in (1000, 10000):
        ray.get(a.draw_batch.remote(bs))
        n, calls = 0, max(20, 200_000 // bs)
        t = time.perf_counter()
        for _ in range(calls):
            n += len(ray.get(a.draw_batch.remote(bs)))
        res[f"actor_draws_per_s_batch{bs}"] = round(n / (time.perf_counter() - t))
    t = time.perf_counter()
    refs = [a.draw_batch.remote(10000) for _ in range(20)]  # several workers' requests queued at once
    n = sum(len(b) for b in ray.get(refs))
    res["actor_draws_per_s_pipelined"] = round(n / (time.perf_counter() - t))
    res["actor_draws_per_s"] = res["actor_draws_per_s_batch10000"]
    ray.kill(a)
    return res


def bench_naive(jobs: int, tmp: Path) -> dict:
    gc.collect()
    t = time.perf_counter()
    q = [(p << 6) | a for p in range(jobs // M) for a in range(M)]
    random.Random(0).shuffle(q)
    out = {"build_s": round(time.perf_counter() - t, 3)}
    big = [x for x in q[:1000] if x > 256]
    per_int = sum(sys.getsizeof(x) for x in big) / max(len(big), 1)
    out["bytes_per_pair"] = round((sys.getsizeof(q) + per_int * len(q)) / (jobs // M), 1)
    path = tmp / f"naive-{jobs}.bin"
    t = time.perf_counter()
    with open(path, "wb") as f:
        np.asarray(q, np.int64).tofile(f)
        f.flush()
        os.fsync(f.fileno())
    out["checkpoint_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    q2 = np.fromfile(path, np.int64).tolist()
    out["restore_s"] = round(time.perf_counter() - t, 3)
    del q2
    n = 0
    t = time.perf_counter()
    for _ in range(300):
        batch = q[-1000:]
        del q[-1000:]
        n += len(batch)
    out["draws_per_s"] = round(n / (time.perf_counter() - t))
    del q
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--no-actor", action="store_true")
    args = ap.parse_args()
    if not args.no_actor:
        from nhr_ray.runtime.cluster import start_local  # token authentication on, as for a run

        start_local(num_cpus=2, include_dashboard=False, log_to_driver=False)
    result = {"attempts_per_pair": M, "instructions_per_source": K, "sizes": {}}
    with tempfile.TemporaryDirectory() as d:
        for jobs in args.sizes:
            result["sizes"][str(jobs)] = {
                "ours": bench_ours(jobs, Path(d), not args.no_actor),
                "naive_shuffled_list": bench_naive(jobs, Path(d)),
            }
            print(json.dumps({str(jobs): result["sizes"][str(jobs)]}), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
