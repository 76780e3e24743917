"""Autoscaling demo on Ray's fake multi-node provider: GPU worker nodes come when a run's queues back up
and go when its pools shrink, on one machine, with no cloud account.

    python benchmarks/autoscale_demo.py            # ~2 min; the last line is JSON

What it does, as a user would on a real cluster:
1. starts a head (no GPUs, token authentication on: nhr_ray/testing/local_head.py) with
   RAY_FAKE_CLUSTER=1 and an autoscaling config whose only worker type is
   a "4 x GPU" node, min 0, max 3, idle timeout a few seconds (fake nodes are raylets on this host,
   their GPUs are declared, not real: the simulation never touches them);
2. submits a simulation run with `ray job submit` (the repo on PYTHONPATH) with elastic pools
   (`ray.elastic`, `ray.autoscaling_max_gpus=12`): it starts with one actor per GPU role (t2i, gate,
   editor, a one-GPU pre-filter), whose bundles the run asks the autoscaler for, so a first node comes;
3. once sources are queued the editor's queue backs up and its pool doubles (1 -> 2 -> 4 -> 8, up to
   roles.editor.max_actors), each step asking the autoscaler for the new bundles: more nodes come
   while the run goes on;
4. at the tail the pools are let go and the request cleared; idle nodes are removed after
   `idle_timeout_minutes`.
It samples the head's live nodes every half second (its state API, with the head's token) and reports
GPU worker nodes over time next to the run's own pool events (manifest.json "rebalancing").
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nhr_ray.testing.local_head import LocalHead, free_port, node_ip  # noqa: E402

GPUS_PER_NODE = 4
HEAD_CPUS = 8


def autoscaling_config(gcs_address: str, idle_timeout_s: float, max_workers: int) -> dict:
    return {
        "cluster_name": "nhr-fake",
        "max_workers": max_workers,
        "upscaling_speed": 10.0,
        "idle_timeout_minutes": idle_timeout_s / 60.0,
        "provider": {
            "type": "fake_multinode",
            # without it the fake workers dial <ip>:6379, which is not this head
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "head_node_type": "head",
        "available_node_types": {
            # the head hosts the driver, the scheduler and the CPU-only roles; it declares enough CPUs
            # that no CPU demand sends the autoscaler looking for another node of this type
            "head": {"resources": {"CPU": HEAD_CPUS}, "node_config": {}, "min_workers": 0, "max_workers": 0},
            "gpu_x4": {
                "resources": {"CPU": 2, "GPU": GPUS_PER_NODE},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "auth": {"ssh_user": "nobody"},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class NodeSampler(threading.Thread):
    """Counts the head's live GPU nodes every interval_s through its state API (HTTP, with the head's
    token): this process needs no Ray driver of its own."""

    def __init__(self, head: LocalHead, interval_s: float = 0.5):
        super().__init__(daemon=True)
        self.head, self.interval_s = head, interval_s
        self.samples, self.stop_flag, self.t0 = [], threading.Event(), time.monotonic()

    def gpu_nodes(self) -> int:
        nodes = self.head.get_json("/api/v0/nodes?detail=1&limit=10000")["data"]["result"]["result"]
        return sum(1 for n in nodes if n.get("state") == "ALIVE" and (n.get("resources_total") or {}).get("GPU", 0) > 0)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.samples.append((round(time.monotonic() - self.t0, 1), self.gpu_nodes()))
            except Exception:  # noqa: BLE001  (a sample lost while the GCS is busy is not a result)
                pass
            self.stop_flag.wait(self.interval_s)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def wait_for(self, pred, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples and pred(self.samples[-1][1]):
                return self.now()
            time.sleep(0.25)
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle-timeout-s", type=float, default=6.0)
    ap.add_argument("--max-workers", type=int, default=3)
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--scale", type=float, default=0.05, help="sim.realtime_scale: seconds slept per virtual GPU-second")
    ap.add_argument("--timeout-s", type=float, default=240.0)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nhras", dir="/tmp"))
    gcs_port = free_port()
    cfg_path = tmp / "autoscaling.yaml"
    cfg_path.write_text(yaml.safe_dump(autoscaling_config(f"{node_ip()}:{gcs_port}", args.idle_timeout_s, args.max_workers)))
    out = tmp / "run"
    max_gpus = GPUS_PER_NODE * args.max_workers
    sets = [f"task.num_scenes={args.scenes}", "task.items_per_request=6", "sources.seeds_per_prompt=2",
            "scheduler.budget_gpu_hours=null", "output.progress=false", f"sim.realtime_scale={args.scale}",
            "ray.elastic=true", f"ray.autoscaling_max_gpus={max_gpus}", "ray.elastic_sustain_s=2",
            "ray.elastic_idle_s=5", "roles.editor.actors=1", f"roles.editor.max_actors={max_gpus - 3}",
            "roles.prefilter.num_gpus=1"]  # fmt: skip
    entry = [sys.executable, "-m", "nhr_ray", "run", "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    result: dict = {"gpus_per_node": GPUS_PER_NODE, "idle_timeout_s": args.idle_timeout_s}
    head = LocalHead(
        num_cpus=HEAD_CPUS, num_gpus=0, gcs_port=gcs_port, temp_dir=str(tmp / "ray"),
        extra_args=["--autoscaling-config", str(cfg_path)],
        env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"},
    )  # fmt: skip
    (tmp / "ray").mkdir()
    sampler = NodeSampler(head)
    t_start = time.monotonic()
    with head:
        result["gpu_nodes_before"] = sampler.gpu_nodes()
        sampler.start()
        t_submit = sampler.now()
        # Not --working-dir here: fake nodes share this host's session folder, and their runtime-env
        # agents unpack the uploaded package into the same place, one deleting what another's
        # workers import. One host needs no upload: put the repo on every worker's PYTHONPATH.
        r = head.submit(entry, working_dir=None, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}}, timeout_s=args.timeout_s)
        t_done = sampler.now()
        result["job_ok"] = r.returncode == 0
        during = [n for t, n in sampler.samples if t_submit <= t <= t_done]
        result["peak_gpu_nodes_during_run"] = max(during, default=0)
        result["job_seconds"] = round(t_done - t_submit, 1)
        t_zero = sampler.wait_for(lambda n: n == 0, args.idle_timeout_s + 90)
        result["scale_down_s_after_job"] = None if t_zero is None else round(t_zero - t_done, 1)
        sampler.stop_flag.set()
        sampler.join(timeout=30)
        result["gpu_nodes_after"] = sampler.samples[-1][1] if sampler.samples else None
        if not result["job_ok"]:
            print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
    manifest = out / "manifest.json"
    events = json.loads(manifest.read_text())["rebalancing"] if manifest.exists() else []
    # the run's clock starts at its pools' creation, a few seconds after submission: report both
    result["pool_events"] = [e for e in events if "grow" in e or "shrink" in e or "closed" in e]
    result["editor_peak_actors"] = max((e["live"] for e in events if e.get("role") == "editor" and "live" in e), default=1)
    funnel = out / "funnel.json"
    result["funnel_balanced"] = funnel.exists() and all(json.loads(funnel.read_text())["balanced"].values())
    result["timeline"] = _changes(sampler.samples)
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    result["entrypoint"] = shlex.join(entry[1:])
    ok = (result["job_ok"] and result["gpu_nodes_before"] == 0 and result["peak_gpu_nodes_during_run"] >= 2
          and result["editor_peak_actors"] > 1 and result["gpu_nodes_after"] == 0)  # fmt: skip
    result["ok"] = bool(ok)
    print(json.dumps(result))
    return 0 if ok else 1


def _changes(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Only the samples where the GPU node count changed."""
    out = []
    for t, n in samples:
        if not out or out[-1][1] != n:
            out.append((t, n))
    return out


if __name__ == "__main__":
    sys.exit(main())
