"""The cluster path a user takes: a real `ray start --head`, then `ray job submit --working-dir <repo>`
of the default simulation run (shrunk), exactly as README's "Run on a cluster" shows.

The working directory is the only way the package reaches the cluster here (the offline variant:
no pip index needed); the test checks the job imported nhr_ray from the uploaded copy, not from
wherever this test's own interpreter has it installed."""

import json
import re
import shlex
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nhr_ray.testing.local_head import LocalHead

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_ray_job_submit_runs_the_pipeline(tmp_path):
    out = tmp_path / "run"
    sid = f"nhr-test-{uuid.uuid4().hex[:8]}"
    sets = ["task.num_scenes=6", "task.items_per_request=6", "sources.seeds_per_prompt=2",
            "scheduler.budget_gpu_hours=null", "output.progress=false",
            # the head declares 8 (fake) GPUs; the default pools hold 1+1+1+4 with one editor
            "roles.editor.actors=1"]  # fmt: skip
    # the interpreter of this test (a cluster node's `python` is whatever its image or venv has)
    py = sys.executable
    run_cmd = [py, "-m", "nhr_ray", "run", "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    # `ray job submit` shell-quotes each word it is given: a compound command goes through bash -c
    probe = shlex.join([py, "-c", "import nhr_ray; print('NHR_FROM', nhr_ray.__file__)"])
    entry = ["bash", "-c", probe + " && " + shlex.join(run_cmd)]
    with LocalHead(num_cpus=4, num_gpus=8) as head:
        r = head.submit(entry, working_dir=str(REPO), extra_args=["--submission-id", sid], timeout_s=240)
        status = head.job_status(sid)
    assert r.returncode == 0 and status == "SUCCEEDED", (status, r.stdout[-3000:], r.stderr[-3000:])
    # the job ran the uploaded copy of the package (Ray puts the working dir first on PYTHONPATH)
    m = re.search(r"NHR_FROM (\S+)", r.stdout)
    assert m and "runtime_resources" in m.group(1) and not m.group(1).startswith(str(REPO)), r.stdout[-2000:]
    assert "plausibility gate" in r.stdout  # the run's Table 3, streamed back by `ray job submit`
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["balanced"] and all(funnel["balanced"].values()), funnel["balanced"]
    triplets = sorted((out / "data").glob("triplets-*.parquet"))
    assert triplets and pq.read_table(triplets).num_rows > 0
    assert pq.read_table(sorted((out / "data").glob("sources-*.parquet"))).num_rows == 6 * 2
