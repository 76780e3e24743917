"""Score provenance and composition.rescore on real (small) simulation runs on a private Ray cluster.
Both runs have backward consistency off, so that (a) an inverse's scores are its forward's, inherited,
and (b) the two runs differ only by the rescore: what it drops is all that changes."""

import glob
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from conftest import small_config
from nhr_ray.runtime.pipeline import run

# no malformed answers: what the rescore drops is its scores only (bad answers are test_pipeline_ray's)
SETS = {"task.num_scenes": 16, "seed": 2, "consistency.enabled": False, "sim.malformed_rate": 0}  # seed 2: the rescore both keeps and drops


def _rows(out, prefix, directory="data"):
    return pq.read_table(sorted(glob.glob(str(out / directory / f"{prefix}-*.parquet")))).to_pylist()


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("rescore")
    out = {}
    for name, rescore in (("off", False), ("on", True)):
        run(small_config(**SETS, **{"composition.rescore": rescore}), base / name)
        out[name] = base / name
    return out


def test_with_consistency_off_an_inverse_inherits_its_forwards_scores(runs):
    trip = {r["sample_id"]: r for r in _rows(runs["off"], "triplets")}
    inverses = [r for r in trip.values() if r["kind"] == "inverse"]
    assert inverses
    for r in inverses:
        (f,) = r["parents"]
        assert (r["score_source"], r["scored_by"], r["scores_from"]) == ("inherited", None, [f])
        assert (r["adherence"], r["aesthetics"]) == (trip[f]["adherence"], trip[f]["aesthetics"])
        assert trip[f]["score_source"] == "judged" and trip[f]["scored_by"] == "validation"


def test_rescore_judges_every_composition_and_drops_what_fails(runs):
    off = {r["sample_id"]: r for r in _rows(runs["off"], "triplets")}
    on = {r["sample_id"]: r for r in _rows(runs["on"], "triplets")}
    answers = [a for a in _rows(runs["on"], "answers", "state") if a["stage"] == "rescore"]
    composed_off = {k for k, r in off.items() if r["kind"] == "composed"}
    composed_on = {k for k, r in on.items() if r["kind"] == "composed"}
    # every composition was judged once (its lineage recorded), and the count matches
    assert sorted(a["text"] for a in answers) == sorted(off[k]["lineage"] for k in composed_off)
    rejected = {a["text"] for a in answers if not a["keep"]}
    assert rejected and len(rejected) < len(answers)  # the check both keeps and drops on this seed
    assert {on[k]["lineage"] for k in composed_on} == {off[k]["lineage"] for k in composed_off} - rejected
    cfg = small_config().validation
    for k in composed_on:
        r = on[k]
        assert (r["score_source"], r["scored_by"], r["scores_from"]) == ("judged", "validation", [])
        assert r["adherence"] >= cfg.min_adherence and r["aesthetics"] >= cfg.min_aesthetics
    # nothing else changes: forwards and inverses are the same rows
    assert {k: r for k, r in on.items() if r["kind"] != "composed"} == {k: r for k, r in off.items() if r["kind"] != "composed"}
    # counted: the funnel's rescore tally and the manifest's triplet counts
    funnel = json.loads((runs["on"] / "funnel.json").read_text())
    t = funnel["stages"]["rescore"]
    assert t["in"] == len(answers) and t["kept"] == len(composed_on) and funnel["balanced"]["rescore"]
    assert sum(t["dropped"].values()) + sum(t["failed"].values()) == len(rejected)
    assert set(t["dropped"]) <= {"low_adherence", "low_aesthetics"} and not t["failed"]
    m = json.loads((runs["on"] / "manifest.json").read_text())["triplets"]
    assert m["composed_not_rescored"] == len(rejected) and m["final_composed"] == len(composed_on)


def test_with_rescore_off_nothing_is_rescored(runs):
    funnel = json.loads((runs["off"] / "funnel.json").read_text())
    manifest = json.loads((runs["off"] / "manifest.json").read_text())
    assert "rescore" not in funnel["stages"] and "composed_not_rescored" not in manifest["triplets"]
    assert not [a for a in _rows(runs["off"], "answers", "state") if a["stage"] == "rescore"]
    composed = [r for r in _rows(runs["off"], "triplets") if r["kind"] == "composed"]
    assert composed and all(r["score_source"] == "inherited" and r["scores_from"] == r["parents"] for r in composed)
