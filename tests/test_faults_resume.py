"""Faults and resume, on real Ray: a killed worker actor, a removed node, a SIGKILLed driver.
In every case the run ends with exactly the triplets of an uninterrupted run (0 lost, 0 duplicated)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
import ray

from conftest import small_config
from nhr_ray.runtime.pipeline import run

SETS = {"task.num_scenes": 16, "task.items_per_request": 8, "sources.seeds_per_prompt": 3, "output.shard_rows": 16}


def triplets(out):
    t = pq.read_table(sorted((out / "data").glob("triplets-*.parquet")), columns=["sample_id", "edit_instruction", "score"])
    rows = t.to_pylist()
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated triplets"
    return {r["sample_id"]: (r["edit_instruction"], r["score"]) for r in rows}


def attempts_complete(out):
    ids = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["attempt_id"]).column("attempt_id").to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(ids) == len(set(ids)) == manifest["scheduler"]["jobs_total"]
    return manifest


def uninterrupted(shared_run):
    """The uninterrupted run of SETS (its folder): mined once per test session (conftest.shared_run)
    and compared against by this module, test_remote_storage, test_autosize, test_node_loss and
    test_elastic, each on its own cluster."""
    return shared_run("faults-reference", small_config(**SETS))[0]


@pytest.fixture(scope="module")
def reference(shared_run, ray_local):
    out = uninterrupted(shared_run)
    REF["manifest"] = json.loads((out / "manifest.json").read_text())
    return triplets(out)


REF: dict = {}  # the uninterrupted run's manifest (its busy GPU-hours: every job paid once)


def _kill_when(pattern: str, after_jobs_dir, stop: threading.Event, restart: bool = True) -> threading.Thread:
    def killer():
        while not stop.is_set():
            if list(after_jobs_dir.glob("data/attempts-*.parquet")):
                names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if pattern in a["name"]]
                if names:
                    ray.kill(ray.get_actor(names[0]), no_restart=not restart)
                    return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    return t


def test_worker_actor_crash_loses_nothing(reference, tmp_path):
    out = tmp_path / "crash"
    stop = threading.Event()
    _kill_when("-editor-0", out, stop)
    res = run(small_config(**SETS), out)
    stop.set()
    assert res["manifest"]["reissued_batches"] >= 1
    attempts_complete(out)
    assert triplets(out) == reference


@pytest.mark.parametrize("checkpoint_every_s", [60.0, 0.2], ids=["from-parquet", "from-checkpoint"])
def test_driver_sigkill_then_same_command_resumes(reference, tmp_path, checkpoint_every_s):
    """60 s: no scheduler checkpoint before the kill, the queue is rebuilt from the Parquet record.
    0.2 s: the scheduler continues from its checkpoint (permutation, ledger) and the record tells it
    which of its queued or in-flight jobs finished after the checkpoint."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nhr_ray", "run", "--out", str(out), "--set", "output.progress=false",
           "--set", "scheduler.budget_gpu_hours=null", "--set", "output.shard_rows=16",
           "--set", f"scheduler.checkpoint_every_s={checkpoint_every_s}",
           *[a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("data/attempts-*.parquet"))) < 2:
        time.sleep(0.05)
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it could be killed"
    done_before = len(list(out.glob("data/attempts-*.parquet")))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = attempts_complete(out)
    assert manifest["resumed"] is True and done_before >= 2
    assert manifest["scheduler"]["restored_from_checkpoint"] is (checkpoint_every_s < 1)
    assert triplets(out) == reference
    # every job's cost counted once, plus the work in flight at the kill that was done again; a
    # checkpoint's jobs counted twice would add half a run or more
    busy, ref_busy = manifest["gpu_hours"]["busy_gpu_hours"], REF["manifest"]["gpu_hours"]["busy_gpu_hours"]
    assert ref_busy * 0.999 <= busy <= ref_busy * 1.25, (busy, ref_busy)
    assert not list(out.glob("data/.*.tmp"))


def test_resume_refuses_another_config_and_foreign_state(tmp_path):
    from nhr_ray.runtime.pipeline import RunError, open_output

    cfg = small_config(**SETS)
    out = open_output(cfg, str(tmp_path / "a"))
    assert out.mode == "new" and not (tmp_path / "a").exists()  # nothing written until the run starts work
    out.commit()
    assert open_output(cfg, str(tmp_path / "a")).mode == "resumed"  # same config: resume
    with pytest.raises(RunError, match="another config .*edit.attempts_per_instruction"):
        open_output(small_config(**SETS, **{"edit.attempts_per_instruction": 2}), str(tmp_path / "a"))
    (tmp_path / "a" / "state" / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        open_output(cfg, str(tmp_path / "a"))
    (tmp_path / "a" / "state" / "run.json").write_text('{"format": "something-else"}')
    with pytest.raises(RunError, match="not an nhr-ray run state"):
        open_output(cfg, str(tmp_path / "a"))
    (tmp_path / "b" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(RunError, match="unknown run"):
        open_output(cfg, str(tmp_path / "b"))
    (tmp_path / "c" / "state").mkdir(parents=True)  # state of a run without its run.json: not ours to resume
    (tmp_path / "c" / "state" / "scheduler.npz").write_bytes(b"PK")
    with pytest.raises(RunError, match="unknown run"):
        open_output(cfg, str(tmp_path / "c"))


def test_metrics_reach_the_prometheus_endpoint(ray_local, tmp_path):
    """Custom metrics recorded during a run are exported by the node's metrics agent: this run's own
    series (tagged with its run name), whatever other runs this cluster served."""
    import urllib.request

    names_seen = []
    watch = type("Watch", (), {"started": lambda self, m: names_seen.append(m.run_name), "mined": lambda self, m: None})()
    run(small_config(), tmp_path / "metrics", watch=watch)
    tag = f'run="{names_seen[0]}"'
    port = ray._private.worker.global_worker.node.metrics_export_port
    ip = ray.util.get_node_ip_address()
    names = ["ray_nhr_stage_rows_total", "ray_nhr_queue_depth", "ray_nhr_gpu_hours", "ray_nhr_triplets_total"]
    actors = ["ray_nhr_call_latency_seconds"]  # recorded by the actors, tagged by role only

    def missing(text: str) -> list[str]:
        ours = [line for line in text.splitlines() if tag in line]
        return [n for n in names if not any(line.startswith(n) for line in ours)] + [n for n in actors if n not in text]

    deadline, text = time.time() + 60, ""
    while time.time() < deadline:
        try:
            text = urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5).read().decode()
        except OSError:
            text = ""
        if not missing(text):
            break
        time.sleep(1)
    assert not missing(text), missing(text)
    ours = [line for line in text.splitlines() if tag in line]
    assert any('stage="prefilter"' in line and 'outcome="dropped"' in line for line in ours)
