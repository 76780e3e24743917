"""End to end: `nhr-ray run --preset api` against local OpenAI and Gemini servers.

The designer (OpenAI), validator and inverter (Gemini) talk real HTTP through the real SDKs from
Ray actors; the GPU roles are simulated. The fake designer writes scenes in the simulation world's
language, so the simulated T2I and editor can draw them. No key may appear in any output file or
in what the CLI prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nhr_ray.backends.sim.text import design_scene
from nhr_ray.testing.fake_api import FakeAPIServer, prompt_text, random_faults

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-e2e-0penAIsecretKEY1234567890"
GEMINI_KEY = "AIzaE2EsecretGEMINIkey1234567890xyz"


def designer(rec) -> str:
    text = prompt_text(rec)
    n = int(re.search(r"exactly (\d+) items", text).group(1))
    rng = np.random.default_rng(rec.seq)
    return json.dumps([design_scene(rng, int(rng.integers(1, 4)), "mixed") for _ in range(n)])


def gemini(rec) -> str:
    if "inlineData" in json.dumps(rec.body):  # a judge's question with images
        return '{"adherence": 4.9, "aesthetics": 4.8}'
    return "Place a small red cup on the left of the table."


@pytest.mark.slow
def test_api_preset_runs_end_to_end_and_leaks_no_key(tmp_path):
    # a few injected 500s and 429s on Gemini: retried inside the backend, invisible to the run
    g_faults = random_faults(0.15, ("429", "500"), seed=3)
    with FakeAPIServer("openai", responder=designer) as oa, FakeAPIServer("gemini", responder=gemini, faults=g_faults) as gm:
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
