"""SIMULATION: how long a call takes on a GPU that other actors share, in real-time mode.

`slice` (the default) runs an actor on a fraction f of a GPU at f of the GPU's speed, always: a fixed
partition, like MIG. `time_shared` runs it the way a GPU time-slices between processes: while k calls
are running on the same GPU each progresses at 1/k of its speed, and a call alone gets the whole GPU.
Either way one GPU never does more than one GPU-second of work per second; `sim.time_share_efficiency`
takes a share of that away while calls share a GPU (switching between contexts is not free). The
calls running on a GPU are files in a folder named after the GPU (node id and GPU id), one per
calling thread, so the actors of one machine (all the nodes of a `ray.cluster_utils.Cluster`) see
each other without Ray.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

SLICE_S = 0.05  # wall seconds between looks at how many calls share the GPU


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(folder: Path) -> int:
    n = 0
    for e in os.scandir(folder):
        pid = int(e.name.split("-", 1)[0])
        if _alive(pid):
            n += 1
        else:  # a process that died mid-call: its call is over
            Path(e.path).unlink(missing_ok=True)
    return n


def run_time_shared(device: str, gpu_seconds: float, root: str | None = None, efficiency: float = 1.0) -> float:
    """Sleep until `gpu_seconds` of the GPU's time have been given to this call, sharing the GPU with
    the calls other threads and processes are running on the same `device`. Returns the wall seconds.
    Progress over each slice is its wall time divided by the most calls seen on the GPU during it, so
    the calls on a GPU together never progress faster than the GPU; while several share it, they
    together get `efficiency` of it (what switching between contexts costs)."""
    folder = Path(root or tempfile.gettempdir()) / "nhr-sim-gpus" / hashlib.sha1(device.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    me = folder / f"{os.getpid()}-{threading.get_ident()}"
    me.touch()
    t_start = time.monotonic()
    try:
        left = gpu_seconds
        while left > 1e-9:
            k0 = max(1, _running(folder))
            t0 = time.monotonic()
            time.sleep(min(SLICE_S, left * k0 / (efficiency if k0 > 1 else 1.0)))
            k = max(k0, _running(folder))
            left -= (time.monotonic() - t0) * (efficiency if k > 1 else 1.0) / k
    finally:
        me.unlink(missing_ok=True)
    return time.monotonic() - t_start
