"""The GPU benchmark runs at tiny size on CPU, so it cannot rot between GPU runs."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_roles.py"


def test_tiny_run_prints_every_role_next_to_its_eager_baseline_as_json():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--steps", "1", "--warmup", "0", "--repeats", "1", "--fuse-qkv"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["tiny"] is True and res["device"] == "cpu"
    assert set(res["t2i"]["seconds_per_image"]) == {"eager", "+fuse_qkv"}
    assert res["editor"]["seconds_per_attempt"]["eager"] > 0 and "+fuse_qkv" in res["editor"]["speedup_vs_eager"]
    assert res["gate"]["calls_per_s"]["eager"] > 0 and res["gate"]["tokens_in"] > 2 * 16
