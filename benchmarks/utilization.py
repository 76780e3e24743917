"""Reserved GPUs kept busy: autosized pools vs an even split, on a 4-node simulated cluster.

A `ray.cluster_utils.Cluster` with a CPU-only head and 4 nodes declaring 4 GPUs each runs the
streaming phase (stages 1-8) twice on the same work in real-time simulation mode (every call sleeps
its GPU-seconds / its GPUs x --scale):

    baseline  16 GPUs split evenly over the four GPU roles (t2i 4x1, gate 4x1, editor 4x1,
              pre-filter 1x4), fixed for the run
    autosize  ray.autosize: pools sized from cost per attempt (t2i and gate on quarter GPUs), re-balanced
              from measured rates, actors let go at the tail
    autosize_prefilter_1gpu  the same with the pre-filter on one GPU per actor (a quantized 72B)
    autosize_timeshared  every GPU role on half a GPU, time-sliced by its GPU (sim.gpu_sharing), so
              whoever has work gets the GPU (a co-location plan); --time-share-efficiency < 1
              charges for switching between the two
    autosize_colocated  one editor per GPU on 3/4 of it, judges and sources on quarters beside
              them, time-sliced: the GPU is shared only while a judge call runs next to an edit

For each: busy_over_reserved overall and per role (busy GPU-seconds from the ledger over GPUs held x
wall time as the run's ledger counts it, from the pools' creation to the end, start and tail
included), the same over all 16 GPUs of the cluster x the phase's wall time (a fixed cluster's bill),
triplets per reserved GPU-hour (real hours: the simulated wall divided by --scale), cross-node bytes
per attempt (estimated from actor placement and image sizes), driver and scheduler peak RSS, and the
steady state's ceiling: the busy share the sizer's own plan allows at the editor and pre-filter costs
the run measured (whole-GPU actors cannot split 16 GPUs in every ratio).
Then, unless --fast-scenes 0, a long fast-mode run (scale 0) reports RSS at 10 %, 50 % and 100 % of its attempts.

    python benchmarks/utilization.py [--scenes 30] [--baseline-scenes N] [--scale 0.03] [--fast-scenes 300]
        [--max-starting 2] [--time-share-efficiency 1.0] [--modes autosize_timeshared autosize ...]

The last line printed is the JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ray
from ray.cluster_utils import Cluster

from nhr_ray.config import load_config
from nhr_ray.runtime.cluster import use_token_auth
from nhr_ray.runtime.driver import Miner
from nhr_ray.runtime.pipeline import run
from nhr_ray.runtime.sizing import RoleSpec, plan, utilization

MB = 1 << 20
NODES, GPUS_PER_NODE = 4, 4

BASELINE = {"roles.t2i.actors": 4, "roles.gate.actors": 4, "roles.editor.actors": 4, "roles.prefilter.actors": 1}
AUTOSIZE = {"ray.autosize": True, "roles.t2i.num_gpus": 0.25, "roles.gate.num_gpus": 0.25, "ray.rebalance_every_s": 5}
MODES = {
    # every GPU role on half a GPU, two actors per GPU, time-sliced by the GPU (sim.gpu_sharing): an
    # editor (FLUX-Kontext size, ~34 GB in bf16) next to a judge (7B-class, or a 4-bit 72B on a 141 GB
    # GPU) or a second editor; whoever has work gets the GPU, so the pre-filter's spare time goes to
    # editing instead of idling. Halves never fragment: any GPU with room takes any actor
    "autosize_timeshared": {**AUTOSIZE, "sim.gpu_sharing": "time_shared", "roles.editor.num_gpus": 0.5,
                            "roles.prefilter.num_gpus": 0.5, "roles.t2i.num_gpus": 0.5, "roles.gate.num_gpus": 0.5},
    # one editor per GPU on three quarters of it, and the judges and sources on quarters beside the
    # editors, time-sliced: the GPU is shared only while a judge call runs next to an edit (two
    # editors per GPU, above, share it all the time, and pay any switching cost all the time). Memory:
    # an editor (~34 GB) beside a 7B-class judge, or beside a 4-bit 72B on a 141 GB GPU
    "autosize_colocated": {**AUTOSIZE, "sim.gpu_sharing": "time_shared", "roles.editor.num_gpus": 0.75,
                           "roles.prefilter.num_gpus": 0.25, "roles.t2i.num_gpus": 0.25, "roles.gate.num_gpus": 0.25},
    "autosize": AUTOSIZE,
    # the 72B pre-filter quantized onto one GPU per actor: finer grain for the sizer
    "autosize_prefilter_1gpu": {**AUTOSIZE, "roles.prefilter.num_gpus": 1},
    "baseline": BASELINE,
}


class RssWatch(threading.Thread):
    """Samples driver and scheduler RSS every 0.2 s; records marks at given attempt counts."""

    def __init__(self, marks: tuple[int, ...] = ()):
        super().__init__(daemon=True)
        self.miner: Miner | None = None
        self.marks, self.at = sorted(marks), {}
        self.peak = {"driver": 0, "scheduler": 0}
        self.sched: psutil.Process | None = None
        self.stop = threading.Event()

    def started(self, miner: Miner) -> None:
        """pipeline.run's watch hook: the run's Miner, before its pools start."""
        self.miner = miner
        self.start()

    def mined(self, miner: Miner) -> None:
        """pipeline.run's watch hook: the streaming phase ended (before finalize)."""
        self.at["end"] = {"attempts": miner.funnel.tally("edit").n_in,
                          "driver_rss_mb": round(psutil.Process().memory_info().rss / MB, 1),
                          "scheduler_rss_mb": round(self.sched.memory_info().rss / MB, 1) if self.sched else None}
        self.stop.set()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            d = me.memory_info().rss
            s = 0
            if self.sched is None and getattr(self.miner, "scheduler", None) is not None:
                try:
                    self.sched = psutil.Process(ray.get(self.miner.scheduler.__ray_call__.remote(lambda self: os.getpid())))
                except Exception:
                    pass
            if self.sched is not None:
                try:
                    s = self.sched.memory_info().rss
                except psutil.Error:
                    pass
            self.peak["driver"], self.peak["scheduler"] = max(self.peak["driver"], d), max(self.peak["scheduler"], s)
            n = self.miner.funnel.tally("edit").n_in
            for m in self.marks:
                if n >= m and m not in self.at:
                    self.at[m] = {"attempts": n, "driver_rss_mb": round(d / MB, 1), "scheduler_rss_mb": round(s / MB, 1)}
            time.sleep(0.2)


def mine(sets: dict, scale: float, marks: tuple[int, ...] = ()) -> dict:
    cfg = load_config(overrides=[f"{k}={v}" for k, v in {"output.progress": "false", "scheduler.budget_gpu_hours": "null",
                                                            "ray.cpu_workers": 4, "sim.realtime_scale": scale, **sets}.items()])
    watch = RssWatch(marks)
    with tempfile.TemporaryDirectory() as d:  # the CLI's entry point: validate, mine, finalize, report
        result = run(cfg, Path(d) / "run", watch=watch)
    watch.stop.set()
    if watch.is_alive():
        watch.join()
    mined, counts = result["manifest"], result["manifest"]["triplets"]
    wall = mined["timeline"]["loop_end"]  # the streaming phase: from the pools' start to the loop's end
    led = mined["gpu_hours"]
    busy = led["by_role_gpu_hours"]
    res = led["reserved_by_role_gpu_hours"]
    cluster_gpus = NODES * GPUS_PER_NODE
    attempts = result["funnel"]["stages"]["edit"]["in"]
    reserved_real_h = led["reserved_gpu_hours"] / scale if scale else None
    loc = mined["locality"]
    # the steady state's ceiling: editor and pre-filter GPU-seconds per attempt as this run measured
    # them, split over the 16 GPUs by the sizer's own plan (what whole or half actors allow)
    per_attempt = {r: busy.get(r, 0.0) * 3600.0 / attempts for r in ("editor", "prefilter")} if attempts else {}
    specs = {r: RoleSpec(cfg.role(r).num_gpus, d) for r, d in per_attempt.items() if d > 0}
    steady = plan([GPUS_PER_NODE] * NODES, specs) if len(specs) == 2 and cfg.sim.gpu_sharing == "slice" else {}
    return {
        "wall_s": round(wall, 1),
        "setup_s": mined["timeline"].get("pools_ready"),  # until every starting actor had loaded (work starts before)
        "attempts": attempts,
        "triplets": {k[6:]: v for k, v in counts.items() if k.startswith("final_")},
        "busy_over_reserved": round(led["busy_gpu_hours"] * scale / led["reserved_gpu_hours"], 3) if scale else None,
        "busy_over_reserved_by_role": {r: round(busy.get(r, 0) * scale / h, 3) for r, h in res.items() if h} if scale else None,
        "busy_over_cluster_gpus": round(led["busy_gpu_hours"] * 3600 * scale / (cluster_gpus * wall), 3) if scale else None,
        "triplets_per_reserved_gpu_hour": round(sum(counts.get(k, 0) for k in counts if k.startswith("final_")) / reserved_real_h, 2)
        if reserved_real_h else None,
        "forward_triplets_per_reserved_gpu_hour": round(counts.get("final_forward", 0) / reserved_real_h, 2) if reserved_real_h else None,
        "steady_state_ceiling": {"gpu_s_per_attempt": {r: round(v, 2) for r, v in per_attempt.items()}, "plan": steady,
                                 "busy_over_reserved": round(utilization(steady, specs)["all"], 3) if steady else None},
        "cross_node_bytes_per_attempt": round(loc["cross_node_bytes"] / max(loc["attempts"], 1)),
        "image_pixels_scale": cfg.sources.scale,
        "pools": {r: p["actors_started"] for r, p in mined["pools"].items()},
        "rebalancing": mined["rebalancing"],
        "timeline_s": {**mined["timeline"], "phase_end": round(wall, 2)},
        "peak_rss_mb": {k: round(v / MB, 1) for k, v in watch.peak.items()},
        "rss_at": watch.at,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=30, help="scene prompts per real-time run (about 75 attempts each)")
    ap.add_argument("--baseline-scenes", type=int, default=None,
                    help="scenes of the baseline run (default: --scenes, the same work; it runs ~3.4x longer)")
    ap.add_argument("--scale", type=float, default=0.03, help="sim.realtime_scale: wall seconds per GPU-second")
    ap.add_argument("--fast-scenes", type=int, default=300, help="scenes of the fast-mode RSS run (0: skip it)")
    ap.add_argument("--batch", type=int, default=2, help="scheduler.batch_size (pairs per editor call)")
    ap.add_argument("--time-share-efficiency", type=float, default=1.0,
                    help="sim.time_share_efficiency of the time-shared modes (0.9: a tenth of a shared GPU lost to switching)")
    ap.add_argument("--max-starting", type=int, default=2, help="ray.max_starting_actors (every mode)")
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES), help="real-time runs (none: only the fast run)")
    args = ap.parse_args()
    use_token_auth()  # the simulated nodes listen on this machine's address: token authentication on
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    for _ in range(NODES):
        c.add_node(num_cpus=8, num_gpus=GPUS_PER_NODE)
    ray.init(address=c.address, logging_level="ERROR")
    c.wait_for_nodes()
    out: dict = {"cluster": f"head (0 GPU) + {NODES} nodes x {GPUS_PER_NODE} GPUs", "scale": args.scale, "scenes": args.scenes,
                 "baseline_scenes": args.baseline_scenes or args.scenes,
                 "batch": args.batch, "max_starting_actors": args.max_starting,
                 "time_share_efficiency": args.time_share_efficiency}
    try:
        # 2 pairs (10 attempts, ~3 s of one editor at scale 0.04) per chain: at the default 8 pairs a short
        # run's start and tail are a few 40-attempt batches long
        # the 4 simulated nodes share this machine's 2 cores: started all at once, 26-40 actor
        # processes (~0.4 CPU-s each) all finish loading together after 10-20 s; two at a time, in
        # pipeline order, the first ones work within a second while the rest load (the same total)
        common = {"sources.scale": 0.0625, "ray.max_starting_actors": args.max_starting}
        sets = {**common, "scheduler.batch_size": args.batch}
        for mode in args.modes:
            n = args.baseline_scenes if mode == "baseline" and args.baseline_scenes else args.scenes
            extra = {"sim.time_share_efficiency": args.time_share_efficiency} if MODES[mode].get("sim.gpu_sharing") else {}
            r = mine({**sets, "task.num_scenes": n, **MODES[mode], **extra}, args.scale)
            out[mode] = r
            print(json.dumps({mode: {k: r[k] for k in ("wall_s", "attempts", "busy_over_reserved", "busy_over_cluster_gpus")}}), flush=True)
        if args.fast_scenes:
            # attempts expected: ~77 per scene at the default funnel
            n = args.fast_scenes * 77
            r = mine({**common, "task.num_scenes": args.fast_scenes, **AUTOSIZE}, 0.0, marks=(n // 10, n // 2, n))
            out["fast"] = {k: r[k] for k in ("wall_s", "attempts", "peak_rss_mb", "rss_at", "triplets")}
            out["fast"]["attempts_per_s"] = round(r["attempts"] / r["wall_s"], 1)
    finally:
        ray.shutdown()
        c.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
