"""Aspect buckets: drawn with NHR-Edit's frequencies (paper Table 8) by default, uniformly as an
option, and the drawn mix counted in the sources tally (the funnel and the report show it)."""

from collections import Counter

import numpy as np
import pytest

from nhr_ray.config import PAPER_BUCKETS, load_config
from nhr_ray.records import Scene, source_id
from nhr_ray.stages.sources import PAPER_BUCKET_EDITS, SourceStage, bucket_label, bucket_weights, choose_bucket

DRAWS = 4000
# chi-square critical value, 25 degrees of freedom (26 buckets - 1), p = 0.001
CHI2_CRIT_25_P001 = 52.62


def _draws(cfg, n=DRAWS):
    return Counter(choose_bucket(cfg.seed, source_id(f"S{i:07d}", i % 10), cfg.sources)[0] for i in range(n))


def _chi2(counts: Counter, probs) -> float:
    obs = np.array([counts.get(b, 0) for b in PAPER_BUCKETS], dtype=float)
    exp = np.asarray(probs) * obs.sum()
    return float(((obs - exp) ** 2 / exp).sum())


def test_default_draw_matches_the_paper_table():
    cfg = load_config(overrides=["sources.scale=1.0"])
    assert cfg.sources.bucket_draw == "paper"
    paper = np.array(PAPER_BUCKET_EDITS, dtype=float) / sum(PAPER_BUCKET_EDITS)
    counts = _draws(cfg)
    assert _chi2(counts, paper) < CHI2_CRIT_25_P001
    wide = sum(n for (w, h), n in counts.items() if max(w, h) / min(w, h) >= 1.75) / DRAWS
    assert abs(wide - 0.167) < 0.03  # SPEC: 1.75:1 or wider is 16.7 % of NHR-Edit


def test_uniform_option_switches_the_draw():
    cfg = load_config(overrides=["sources.bucket_draw=uniform"])
    counts = _draws(cfg)
    uniform = np.full(26, 1 / 26)
    paper = np.array(PAPER_BUCKET_EDITS, dtype=float) / sum(PAPER_BUCKET_EDITS)
    assert _chi2(counts, uniform) < CHI2_CRIT_25_P001
    assert _chi2(counts, paper) > 10 * CHI2_CRIT_25_P001
    with pytest.raises(Exception, match="bucket_draw"):
        load_config(overrides=["sources.bucket_draw=square"])


def test_custom_buckets_take_the_nearest_paper_aspect():
    w = bucket_weights([(64, 64), (80, 48), (48, 288)], "paper")
    paper = dict(zip(PAPER_BUCKETS, PAPER_BUCKET_EDITS))
    # 64x64 is square (1024x1024), 80x48 is 5:3 like 1280x768, 48x288 (1:6) is nearest 640x1600
    expect = np.array([paper[(1024, 1024)], paper[(1280, 768)], paper[(640, 1600)]], dtype=float)
    assert np.allclose(w, expect / expect.sum())


def test_sources_tally_counts_the_mix():
    cfg = load_config(overrides=["sources.seeds_per_prompt=3"])
    stage = SourceStage(cfg)
    stage.setup()
    scenes = [Scene(f"S{i:07d}", "a red apple on a table", [], "photograph") for i in range(20)]
    tasks = [(s, n) for s in scenes for n in range(3)]
    r = stage.process(tasks)
    tally = r.tally
    mix = {k: n for k, n in tally.notes.items() if k.startswith("bucket:")}
    assert sum(mix.values()) == 60
    expect = Counter(bucket_label(*choose_bucket(cfg.seed, source_id(s.scene_id, n), cfg.sources)[0]) for s, n in tasks)
    assert mix == {f"bucket:{k}": n for k, n in expect.items()}
