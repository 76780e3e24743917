"""The simulated judges err as the paper's do (issue 17): benchmarks/sim_judges.py at its default size
and seed, through `nhr-ray calibrate`, lands each of Table 1's and Table 7's figures within 0.08 of
the paper's row for the fine-tuned validator and for the Qwen-72B pre-filter.

Breaking the judges shows here: checked with a validator whose scores carry almost no noise (sigma
0.01 on both axes), which fails it (adherence MAE 0.267 below the paper's, Spearman 0.141 above).
At 400 scenes the figures of seeds 0 and 1 differ by up to 0.06; at 160 scenes by up to 0.1, too
noisy for a 0.08 band (seed 0 at 160 puts the pre-filter's precision 0.097 above the paper's).
"""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sim_judges.py"
KEYS = {"adherence_mae", "adherence_spearman", "aesthetics_mae", "aesthetics_spearman", "precision", "recall"}


def test_simulated_judges_reproduce_the_papers_figures_within_0_08():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, timeout=900)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["sample"]["simulated"] is True and res["sample"]["rated"] >= 1500
    off = {}
    for role in ("validator", "prefilter"):
        assert set(res[role]) == KEYS == set(res["paper"][role])
        off.update({f"{role}.{k}": round(res[role][k] - res["paper"][role][k], 3) for k in KEYS})
    assert all(abs(v) <= 0.08 for v in off.values()), off
