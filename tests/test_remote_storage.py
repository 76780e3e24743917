"""--out s3://... through pyarrow.fs against a local S3-compatible server (moto), resume included."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import ray

from test_faults_resume import SETS, reference  # noqa: F401  (module fixture: the uninterrupted run)

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the test extra")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield port
    srv.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_s3_run_killed_and_resumed(s3, reference, tmp_path):
    from nhr_ray.io.store import Store

    uri = f"s3://runs/demo?endpoint_override=127.0.0.1:{s3}&scheme=http&allow_bucket_creation=true"
    store = Store(uri)
    store.fs.create_dir("runs")
    cmd = [sys.executable, "-m", "nhr_ray", "run", "--out", uri, "--set", "output.progress=false",
           "--set", "scheduler.budget_gpu_hours=null", *[a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(store.glob("data", "attempts-")) < 2:
        time.sleep(0.1)
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not store.exists("manifest.json")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = store.read_json("manifest.json")
    assert manifest["resumed"] is True
    rows = [row for p in store.glob("data", "triplets-") for row in store.read_table(p, ["sample_id", "edit_instruction", "score"]).to_pylist()]
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert {r["sample_id"]: (r["edit_instruction"], r["score"]) for r in rows} == reference
    attempts = [a for p in store.glob("data", "attempts-") for a in store.read_table(p, ["attempt_id"]).column("attempt_id").to_pylist()]
    assert len(attempts) == len(set(attempts)) == manifest["scheduler"]["jobs_total"]


def test_s3_run_extended_continues_from_its_checkpoint(s3, ray_local):
    """The scheduler's checkpoint reaches the bucket, so an s3:// run extended with more budget
    continues the same queue (restored, not rebuilt), keeps part 1 and draws nothing twice."""
    from nhr_ray.io.store import Store
    from nhr_ray.runtime.pipeline import run
    from test_extend_run import B1, B2, _cfg

    uri = f"s3://runs/ext?endpoint_override=127.0.0.1:{s3}&scheme=http&allow_bucket_creation=true"
    store = Store(uri)
    store.fs.create_dir("runs")

    def state():
        trip = {r["sample_id"]: r["edited_image"]["bytes"] for p in store.glob("data", "triplets-")
                for r in store.read_table(p, ["sample_id", "edited_image"]).to_pylist()}
        att = [a for p in store.glob("data", "attempts-") for a in store.read_table(p, ["attempt_id"]).column("attempt_id").to_pylist()]
        return trip, att

    run(_cfg(B1), uri)
    assert store.exists("state/scheduler.npz")
    trip1, att1 = state()
    m = run(_cfg(B2), uri)["manifest"]
    trip2, att2 = state()
    assert m["scheduler"]["restored_from_checkpoint"] and [p["budget_gpu_hours"] for p in m["parts"]] == [B1, B2]
    assert len(att2) == len(set(att2)) and set(att1) < set(att2)
    assert {k: trip2.get(k) for k in trip1} == trip1 and len(trip2) > len(trip1)
