"""The whole pipeline on the tiny real checkpoints, through the CLI: `nhr-ray run --preset tiny-real`,
exactly as the README gives it. Every real model runs: the gate and pre-filter answer by choice and
pass (the preset's thresholds, explained there), the validator sees every candidate and rejects it
with a counted reason, and every stage is balanced (in = kept + dropped + failed)."""

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
           "--set", "output.progress=false", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    funnel = json.loads((out / "funnel.json").read_text())
    stages = funnel["stages"]
    assert all(funnel["balanced"].values()), funnel["balanced"]
    assert stages["sources"]["kept"] == 4  # 2 scenes x 2 seeds, rendered by the tiny FLUX
    assert stages["gate"]["in"] == 4 and stages["gate"]["kept"] == 4  # the real gate, by choice at threshold 0
    assert stages["edit"]["in"] > 0 and stages["edit"]["failed"] == {}  # the tiny Kontext edited every attempt
    pre = stages["prefilter"]
    assert pre["in"] == stages["edit"]["kept"] and pre["failed"] == {}
    assert pre["kept"] + sum(pre["dropped"].values()) == pre["in"] and pre["kept"] > 0
    low, val = stages["lowlevel"], stages["validation"]
    assert val["in"] == low["kept"] > 0 and val["failed"] == {}  # the real validator saw candidates
    assert val["kept"] + sum(val["dropped"].values()) == val["in"] and sum(val["dropped"].values()) > 0
    assert "reserved GPU-hours" in proc.stdout
    # the designer and the inverter ran on the simulation: every output a user reads says so
    assert proc.stdout.strip().splitlines()[-1].endswith("reserved GPU-hours) (SIMULATED: designer, inverter)")
    assert funnel["simulated_roles"] == ["designer", "inverter"]
    assert json.loads((out / "manifest.json").read_text())["simulated_roles"] == ["designer", "inverter"]
    rows = {r["stage"]: r for r in funnel["table"]}
    assert rows["source images"]["model"] == "flux:flux-tiny" and rows["edits"]["model"] == "diffusers:kontext-tiny"
