"""The whole pipeline on the tiny real checkpoints, through the CLI: `nhr-ray run --preset tiny-real`.
Random weights draw noise and judge nonsense, so the expected result is every candidate rejected
with a counted reason, and every stage balanced (in = kept + dropped + failed)."""

import json
import os
import subprocess
import sys

import pytest

from nhr_ray.config import presets


@pytest.mark.skipif("tiny-real" not in presets() or "default" not in presets(), reason="needs the default preset")
def test_tiny_real_preset_runs_every_real_model_and_counts_its_rejections(tiny_models, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "nhr_ray", "run", "--preset", "tiny-real", "--set", f"models.root={tiny_models['root']}",
           "--set", "output.progress=false",
           # the random-weight gate rejects every source (its answer is not yes/no); a simulated gate
           # lets sources through so the real editor, pre-filter and validator all run
           "--set", "roles.gate.backend=sim", "--set", "roles.gate.options={}", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    funnel = json.loads((out / "funnel.json").read_text())
    stages = funnel["stages"]
    assert all(funnel["balanced"].values()), funnel["balanced"]
    assert stages["sources"]["kept"] == 4  # 2 scenes x 2 seeds, rendered by the tiny FLUX
    assert stages["edit"]["in"] > 0 and stages["edit"]["failed"] == {}  # the tiny Kontext edited every attempt
    pre = stages["prefilter"]
    assert pre["in"] == stages["edit"]["kept"] and pre["failed"] == {}
    assert pre["kept"] + sum(pre["dropped"].values()) == pre["in"] and sum(pre["dropped"].values()) > 0
    rows = {r["stage"]: r for r in funnel["table"]}
    assert rows["source images"]["model"] == "flux:flux-tiny" and rows["edits"]["model"] == "diffusers:kontext-tiny"
