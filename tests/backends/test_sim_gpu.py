"""The simulation's time-shared GPU (real-time mode): calls on one GPU share its time, calls on
different GPUs do not, and a GPU never gives more than one second of work per second."""

import os
import threading

from nhr_ray.backends.sim.gpu import run_time_shared


def _run_together(devices, seconds, root, efficiency=1.0):
    took = {}

    def go(k, dev):
        took[k] = run_time_shared(dev, seconds, root, efficiency)

    ts = [threading.Thread(target=go, args=(k, d)) for k, d in enumerate(devices)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [took[k] for k in range(len(devices))]


def test_calls_on_one_gpu_share_it_and_calls_on_two_gpus_do_not(tmp_path):
    # three calls of 0.2 GPU-s on one GPU: together they need at least 0.6 s of it (never faster),
    # and each is done only when the GPU has given it its 0.2 s
    same = _run_together(["node-a/0"] * 3, 0.2, str(tmp_path))
    assert min(same) >= 0.55
    # the same node's other GPU and another node's GPU 0 are other GPUs: no slowdown (loose bound:
    # a loaded machine oversleeps a little, never by a whole second call's worth)
    apart = _run_together(["node-a/0", "node-a/1", "node-b/0"], 0.2, str(tmp_path))
    assert max(apart) < 0.39
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a finished call leaves no marker behind"


def test_a_call_from_a_dead_process_stops_counting(tmp_path):
    run_time_shared("node-a/0", 0.01, str(tmp_path))  # makes the GPU's folder
    folder = next(p for p in tmp_path.rglob("*") if p.is_dir() and p.parent.name == "nhr-sim-gpus")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (folder / f"{dead}-1").touch()  # left behind by a process killed mid-call
    assert run_time_shared("node-a/0", 0.2, str(tmp_path)) < 0.39
    assert not (folder / f"{dead}-1").exists()


def test_sharing_a_gpu_costs_what_switching_costs(tmp_path):
    # two calls of 0.3 GPU-s at 0.5 efficiency: together they get half the GPU, so each takes ~1.2 s
    # (0.6 s were switching free); alone, a call is not slowed (nothing to switch between)
    shared = _run_together(["node-a/0"] * 2, 0.3, str(tmp_path), 0.5)
    assert min(shared) >= 1.0
    assert run_time_shared("node-a/0", 0.3, str(tmp_path), efficiency=0.5) < 0.5
