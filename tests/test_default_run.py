"""The README's main command: the packaged default on the simulation world."""

import json

import pyarrow.parquet as pq
import pytest

from nhr_ray.config import load_config
from nhr_ray.runtime.pipeline import run


@pytest.fixture(scope="module")
def default_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    cfg = load_config(overrides=["output.progress=false"])
    return out, run(cfg, out)


def test_default_run_mines_all_three_kinds(default_run):
    out, res = default_run
    t = pq.read_table(sorted((out / "data").glob("triplets-*.parquet")), columns=["sample_id", "kind"])
    kinds = t.column("kind").to_pylist()
    assert len(kinds) >= 100
    assert min(kinds.count(k) for k in ("forward", "inverse", "composed")) >= 20
    assert len(set(t.column("sample_id").to_pylist())) == t.num_rows


def test_every_simulated_role_is_listed_in_manifest_funnel_and_last_line(default_run):
    from nhr_ray.cli import run_summary

    out, res = default_run
    every = ["designer", "t2i", "gate", "editor", "prefilter", "validator", "inverter"]
    assert json.loads((out / "manifest.json").read_text())["simulated_roles"] == every
    assert json.loads((out / "funnel.json").read_text())["simulated_roles"] == every
    line = run_summary(res["manifest"], out)
    assert line.endswith(f"(SIMULATED: {', '.join(every)})") and "busy GPU-hours (simulated estimate)" in line


def test_default_funnel_lands_within_5_points_of_the_paper(default_run):
    out, _ = default_run
    funnel = json.loads((out / "funnel.json").read_text())
    assert all(funnel["balanced"].values())
    off = {r["stage"]: (r["change_pct"], r["paper_change_pct"]) for r in funnel["table"] if r["paper_change_pct"] is not None}
    bad = {k: v for k, v in off.items() if abs(v[0] - v[1]) > 5.0}
    assert not bad, bad
