"""End to end: `nhr-ray run --preset api` against local OpenAI and Gemini servers.

The designer (OpenAI), validator and inverter (Gemini) talk real HTTP through the real SDKs from
Ray actors; the GPU roles are simulated. The fake designer writes scenes in the simulation world's
language, so the simulated T2I and editor can draw them. No key may appear in any output file or
in what the CLI prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nhr_ray.testing.fake_api import FakeAPIServer, random_faults, sim_world_answer

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-e2e-0penAIsecretKEY1234567890"
GEMINI_KEY = "AIzaE2EsecretGEMINIkey1234567890xyz"



@pytest.mark.slow
def test_api_preset_runs_end_to_end_and_leaks_no_key(tmp_path):
    # a few injected 500s and 429s on Gemini: retried inside the backend, invisible to the run
    g_faults = random_faults(0.15, ("429", "500"), seed=3)
    with FakeAPIServer("openai", responder=sim_world_answer) as oa, FakeAPIServer("gemini", responder=sim_world_answer, faults=g_faults) as gm:
        env = dict(os.environ, OPENAI_API_KEY=OPENAI_KEY, GEMINI_API_KEY=GEMINI_KEY, RAY_AUTH_MODE="disabled",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # fmt: skip
        env.pop("RAY_ADDRESS", None)
        sets = [
            f"api.openai.base_url={oa.base_url}", f"api.gemini.base_url={gm.base_url}",
            "api.gemini.backoff_initial_s=0.01", "api.gemini.requests_per_minute=3000",
            "task.num_scenes=6", "task.items_per_request=3", "sources.seeds_per_prompt=2",
            "roles.validator.actors=1", "output.progress=false",
            "scheduler.budget_gpu_hours=0.15",
        ]  # fmt: skip
        cmd = [sys.executable, "-m", "nhr_ray", "run", "--preset", "api", "--out", str(tmp_path / "run")]
        for s in sets:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        records = {"openai": list(oa.records), "gemini": list(gm.records)}
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the designer was asked twice (6 scenes, 3 per request) with the key in the header only
    assert len(records["openai"]) == 2
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in records["openai"])
    paths = {r.path for r in records["gemini"]}
    assert "/v1beta/models/gemini-2.0-flash:generateContent" in paths  # validator (preset's model)
    assert "/v1beta/models/gemini-2.5-flash:generateContent" in paths  # inverter

    out = tmp_path / "run"
    funnel = json.loads((out / "funnel.json").read_text())
    usage = funnel["api_usage"]
    assert usage["designer"]["api_calls"] == 2
    calls = sum(u.get("api_calls", 0) for u in usage.values())
    assert calls == len(records["openai"]) + len(records["gemini"])  # every HTTP request counted
    assert sum(u.get("usd", 0) for u in usage.values()) > 0

    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for p in files:
        blob = p.read_bytes()
        for key in (OPENAI_KEY, GEMINI_KEY):
            assert key.encode() not in blob, f"key in {p}"
    assert OPENAI_KEY not in proc.stdout + proc.stderr and GEMINI_KEY not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_killed_api_run_resumes_with_its_spend(tmp_path):
    """SIGKILL mid-run, same command again: the resumed run's funnel carries the API usage recorded
    before the crash, and api.max_cost_usd counts it: a budget already spent stays spent (the
    resumed process only spends what was left)."""
    import signal
    import time

    import pyarrow.parquet as pq

    from nhr_ray.config import load_config

    cfg = load_config(preset="api")
    p, g = cfg.api.price("o3"), cfg.api.price("gemini-2.0-flash")
    designer_usd = 2 * (100 * p.input_per_m + 50 * p.output_per_m) / 1e6  # two design calls (fake usage)
    call_usd = (600 * g.input_per_m + 30 * g.output_per_m) / 1e6  # one validator call (fake usage)
    max_usd = designer_usd + 6 * call_usd  # room for about six validator calls
    out = tmp_path / "run"
    with FakeAPIServer("openai", responder=sim_world_answer) as oa, FakeAPIServer("gemini", responder=sim_world_answer) as gm:
        env = dict(os.environ, OPENAI_API_KEY=OPENAI_KEY, GEMINI_API_KEY=GEMINI_KEY, RAY_AUTH_MODE="disabled",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # fmt: skip
        env.pop("RAY_ADDRESS", None)
        sets = [
            f"api.openai.base_url={oa.base_url}", f"api.gemini.base_url={gm.base_url}", f"api.max_cost_usd={max_usd}",
            "task.num_scenes=6", "task.items_per_request=3", "sources.seeds_per_prompt=2", "roles.validator.actors=1",
            "output.progress=false", "output.shard_rows=1", "scheduler.budget_gpu_hours=null", "sim.realtime_scale=0.02",
        ]  # fmt: skip
        cmd = [sys.executable, "-m", "nhr_ray", "run", "--preset", "api", "--out", str(out)]
        for s in sets:
            cmd += ["--set", s]

        def refused() -> int:  # attempts whose validator call the budget stopped, on disk so far
            n = 0
            for f in sorted((out / "data").glob("attempts-*.parquet")) if (out / "data").exists() else []:
                reasons = pq.read_table(f, columns=["validation_reason"]).column("validation_reason").to_pylist()
                n += reasons.count("error:cost_budget_exhausted")
            return n

        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and refused() == 0:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists()
        before = len(gm.records)
        kept = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["api_usage"]).column("api_usage").to_pylist()
        carried = designer_usd + sum(json.loads(u)["usd"] for u in kept if u)  # what the record says was spent
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
        new_calls = len(gm.records) - before
    # only what the budget had left after the recorded spend (calls lost in flight are redone within
    # it); a resumed run that forgot the spend would have had room for ~20 more calls
    assert carried > designer_usd
    assert new_calls * call_usd <= max_usd - carried + call_usd + 1e-12, (new_calls, carried, max_usd)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"] is True
    usage = json.loads((out / "funnel.json").read_text())["api_usage"]
    rows = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["api_usage"]).column("api_usage").to_pylist()
    recorded = [json.loads(u) for u in rows if u]
    assert recorded, "no attempt recorded its validator usage"
    assert usage["validator"]["api_calls"] == sum(u.get("api_calls", 0) for u in recorded) > 0
    assert usage["validator"]["usd"] == pytest.approx(sum(u.get("usd", 0) for u in recorded))
    assert usage["designer"]["api_calls"] == 2
    spent = sum(u.get("usd", 0) for u in usage.values())
    assert max_usd <= spent <= max_usd + 2 * call_usd  # spent up to the budget, at most a call or two past it
