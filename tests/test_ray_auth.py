"""A local run's Ray cluster admits no driver without its token.

Ray binds a local cluster's GCS, raylet and workers to the machine's network address, so any process
that reaches the address could join the cluster and run code next to the run's API keys. The probe
starts the run's cluster the way `nhr-ray run` does (`runtime.cluster.connect`) in a subprocess with
the environment a user has (no RAY_AUTH_* variables; its own empty home), then a second driver from
another process and another home dials the GCS address: it must be refused for want of the token,
and the same driver with the token must get in and read the key (so the probe is real).

The rest of the suite disables Ray's authentication for its own private clusters (conftest.py);
these tests clear that for the processes they start.
"""

from __future__ import annotations

import os
import queue
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nhr_ray.runtime.cluster import local_auth

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-probe-0penAIsecretKEY1234567890"
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")

RUN = """
import sys
import ray
from nhr_ray.config import load_config
from nhr_ray.runtime.cluster import connect

assert connect(load_config(overrides=["ray.local_num_cpus=1", "ray.local_num_gpus=0"]))
print("GCS", ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes stdin
ray.shutdown()
"""

PROBE = """
import os, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=0)
def steal():
    return os.environ.get("OPENAI_API_KEY")

print("STOLEN", ray.get(steal.remote(), timeout=120), flush=True)
"""


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    return env


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith(prefix):
            return line.split()[1]
    raise AssertionError(f"no {prefix!r} line from the run (exit {proc.poll()}): {proc.stderr.read()[-3000:]}")


@pytest.mark.timeout(400)
def test_a_second_driver_without_the_token_cannot_join_a_local_run(tmp_path):
    run_home = tmp_path / "user"
    run = subprocess.Popen([sys.executable, "-c", RUN], env=user_env(run_home, OPENAI_API_KEY=KEY),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        gcs = wait_for_line(run, "GCS", 240)
        assert not gcs.startswith("127."), gcs  # Ray listens on the machine's address: reachable from outside
        intruder = subprocess.run([sys.executable, "-c", PROBE, gcs], env=user_env(tmp_path / "intruder"),
                                  capture_output=True, text=True, timeout=180)  # fmt: skip
        assert intruder.returncode != 0 and "STOLEN" not in intruder.stdout, intruder.stdout[-2000:]
        assert "InvalidAuthToken" in intruder.stderr or "Unauthenticated" in intruder.stderr, intruder.stderr[-3000:]

        token_file = run_home / ".ray" / "auth_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600  # created for its owner only

        # the same probe with the token gets in and could read the key: the refusal above was real
        owner = subprocess.run([sys.executable, "-c", PROBE, gcs], capture_output=True, text=True, timeout=180,
                               env=user_env(tmp_path / "owner", RAY_AUTH_MODE="token",
                                            RAY_AUTH_TOKEN=token_file.read_text().strip()))  # fmt: skip
        assert f"STOLEN {KEY}" in owner.stdout, (owner.stdout[-2000:], owner.stderr[-3000:])
    finally:
        run.stdin.close()
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for k in AUTH_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_local_auth_creates_a_private_token_once_and_turns_token_mode_on(home):
    local_auth()
    token = home / ".ray" / "auth_token"
    assert os.environ["RAY_AUTH_MODE"] == "token" and stat.S_IMODE(token.stat().st_mode) == 0o600
    first = token.read_text()
    assert len(first) == 64
    local_auth()
    assert token.read_text() == first  # an existing token is kept


def test_local_auth_refuses_a_token_file_others_can_read(home, monkeypatch):
    (home / ".ray").mkdir()
    token = home / ".ray" / "auth_token"
    token.write_text("t" * 64)
    token.chmod(0o644)  # as `ray get-auth-token --generate` leaves it under umask 022
    with pytest.raises(RuntimeError, match=r"readable or writable by other users \(mode 644\).*chmod 600"):
        local_auth()
    token.chmod(0o600)
    local_auth()
    shared = home / "shared_token"
    shared.write_text("t" * 64)
    shared.chmod(0o640)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(shared))
    with pytest.raises(RuntimeError, match="shared_token"):
        local_auth()


def test_local_auth_honours_an_explicit_opt_out_only(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the test suite's own clusters
    local_auth()
    assert os.environ["RAY_AUTH_MODE"] == "disabled" and not (home / ".ray").exists()
    monkeypatch.setenv("RAY_AUTH_MODE", "tokn")
    with pytest.raises(RuntimeError, match="RAY_AUTH_MODE='tokn'"):
        local_auth()
