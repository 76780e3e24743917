"""Whole runs on a real local Ray cluster with declared (fake) GPUs, on the simulation world."""

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from conftest import sim_except, small_config
from nhr_ray.runtime.pipeline import NothingToDo, RunError, open_output, run


def _triplets(out):
    t = pq.read_table(sorted((out / "data").glob("triplets-*.parquet")))
    return {r["sample_id"]: r for r in t.to_pylist()}


@pytest.fixture(scope="module")
def small_run(ray_local, shared_run, tmp_path_factory):
    """small_config()'s run, mined once per session (conftest.shared_run); this module's own copy."""
    return shared_run("small", small_config(), copy_to=tmp_path_factory.mktemp("small") / "run")


def test_outputs_and_accounting(small_run):
    out, res = small_run
    funnel = json.loads((out / "funnel.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["stage"] for r in funnel["table"]][:3] == ["source images", "plausibility gate", "edits"]
    assert all(funnel["balanced"].values()), funnel["balanced"]
    st = funnel["stages"]
    # in = kept + dropped + failed, and each stage feeds the next
    assert st["gate"]["in"] == st["sources"]["kept"]
    assert st["prefilter"]["in"] == st["edit"]["kept"]
    assert st["lowlevel"]["in"] == st["prefilter"]["kept"]
    assert st["validation"]["in"] == st["lowlevel"]["kept"]
    assert st["best_of"]["in"] == st["validation"]["kept"]
    # the budget covered the queue: every job of every surviving source was run exactly once
    attempts = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["attempt_id", "kept"])
    ids = attempts.column("attempt_id").to_pylist()
    assert len(ids) == len(set(ids)) == manifest["scheduler"]["jobs_total"] == st["edit"]["in"]
    sources = pq.read_table(sorted((out / "data").glob("sources-*.parquet")), columns=["source_id", "gate_keep"])
    assert sources.num_rows == 12 * 3
    assert manifest["gpu_hours"]["by_role_gpu_hours"]["editor"] > manifest["gpu_hours"]["by_role_gpu_hours"]["t2i"]
    assert manifest["versions"]["ray"] and manifest["seed"] == 0


def test_triplets_contract_and_lineage(small_run):
    out, res = small_run
    trip = _triplets(out)
    assert trip, "no triplets"
    kinds = {r["kind"] for r in trip.values()}
    assert kinds <= {"forward", "inverse", "composed"} and "forward" in kinds
    for r in trip.values():
        assert r["source_image"]["bytes"][:4] == b"\x89PNG" and r["edited_image"]["bytes"][:4] == b"\x89PNG"
        assert abs(r["score"] - (r["adherence"] * r["aesthetics"]) ** 0.5) < 1e-9
        assert all(p in trip for p in r["parents"]), "a parent was dropped but its child kept"
        if r["kind"] == "forward":
            assert r["adherence"] >= 4.7 and r["aesthetics"] >= 4.7 and r["parents"] == []
        if r["kind"] == "inverse":
            parent = trip[r["parents"][0]]
            assert r["source_image"] == parent["edited_image"] and r["edited_image"] == parent["source_image"]


def test_hf_datasets_loads_the_triplets(small_run):
    datasets = pytest.importorskip("datasets")
    out, _ = small_run
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "triplets-*.parquet"), split="train")
    assert len(ds) == len(_triplets(out))
    assert {"sample_id", "kind", "source_image", "edited_image", "edit_instruction"} <= set(ds.column_names)


def test_same_dataset_with_1_or_several_actors(small_run, tmp_path):
    out, _ = small_run
    cfg = small_config(**{"roles.editor.actors": 3, "roles.editor.num_gpus": 0.5, "roles.prefilter.actors": 2,
                          "roles.prefilter.num_gpus": 1, "roles.t2i.actors": 2, "roles.validator.actors": 2,
                          "scheduler.batch_size": 3, "sources.batch_size": 5})
    run(cfg, tmp_path / "many")
    one = small_config(**{"roles.editor.actors": 1})
    run(one, tmp_path / "one")
    a, b, c = _triplets(out), _triplets(tmp_path / "many"), _triplets(tmp_path / "one")
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        for col in ("edit_instruction", "adherence", "aesthetics", "edited_image", "source_image", "parents"):
            assert a[k][col] == b[k][col] == c[k][col], (k, col)


def test_bad_model_output_is_counted_never_fatal(ray_local, tmp_path):
    # the pre-filter asks and parses as usual but lets every readable answer through (bars at 1, no
    # yes/no questions), so the editor's junk reaches the low-level check instead of failing the
    # pre-filter's perception-based scores first
    cfg = small_config(**{"sim.malformed_rate": 0.3, "task.num_scenes": 10, "prefilter.min_adherence": 1,
                          "prefilter.min_aesthetics": 1, "prefilter.check_unwanted_change": False,
                          "prefilter.check_aesthetics": False})  # fmt: skip
    run(cfg, tmp_path / "bad")
    funnel = json.loads((tmp_path / "bad" / "funnel.json").read_text())
    st = funnel["stages"]
    assert all(funnel["balanced"].values())
    design_drops = set(st["design"]["dropped"])
    assert design_drops & {"missing_edits", "missing_prompt", "response_no_json", "response_truncated_json"}
    assert "unparseable_answer" in st["gate"]["dropped"] or "empty" in st["gate"]["dropped"]
    pre = st["prefilter"]["dropped"]
    assert any(k.startswith("scores_") for k in pre), pre
    assert {"no_change", "size_mismatch"} & set(st["lowlevel"]["dropped"])
    att = pq.read_table(sorted((tmp_path / "bad" / "data").glob("attempts-*.parquet"))).to_pylist()
    bad = [a for a in att if (a["final_reason"] or "").startswith("scores_")]
    assert bad and all(a["prefilter_raw"] or a["validation_raw"] for a in bad)  # the judge's own words kept


def test_budget_stops_issuing(ray_local, tmp_path):
    cfg = small_config(**{"scheduler.budget_gpu_hours": 0.05, "task.num_scenes": 12})
    res = run(cfg, tmp_path / "budget")
    m = res["manifest"]
    assert m["scheduler"]["budget_exhausted"]
    assert m["scheduler"]["jobs_issued"] < m["scheduler"]["jobs_total"]
    # stops within one batch (each batch of pairs is batch_size pairs x M attempts of <= ~30 GPU-s)
    one_batch_h = cfg.scheduler.batch_size * cfg.edit.attempts_per_instruction * 30 / 3600
    assert m["gpu_hours"]["busy_gpu_hours"] <= 0.05 + one_batch_h


def test_refuses_to_overwrite_a_run(small_run):
    """A finished run is never overwritten: the same command again has nothing to do (a larger budget
    would extend it: test_extend_run.py)."""
    out, _ = small_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(NothingToDo, match="holds a complete run whose queue was drawn to the end"):
        run(small_config(), out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_console_script_end_to_end(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "nhr_ray", "run", "--out", str(tmp_path / "cli"), "--set", "task.num_scenes=6",
         "--set", "task.items_per_request=6", "--set", "sources.seeds_per_prompt=2", "--budget-gpu-hours", "1000",
         "--seed", "3", "--set", "output.progress=false"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "plausibility gate" in r.stdout and "backward consistency" in r.stdout
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["scheduler"]["budget_gpu_hours"] == 1000


def test_disabled_filters_pass_everything_visibly(ray_local, tmp_path):
    cfg = small_config(**{"gate.enabled": False, "prefilter.enabled": False, "lowlevel.enabled": False,
                          "task.num_scenes": 4, "sources.seeds_per_prompt": 2})
    run(cfg, tmp_path / "off")
    st = json.loads((tmp_path / "off" / "funnel.json").read_text())["stages"]
    for stage in ("gate", "prefilter", "lowlevel"):
        assert st[stage]["kept"] == st[stage]["in"] > 0
    assert st["gate"]["notes"]["gate_disabled"] == st["gate"]["in"]
    att = pq.read_table(sorted((tmp_path / "off" / "data").glob("attempts-*.parquet"))).to_pylist()
    assert {a["prefilter_raw"] for a in att} == {"prefilter disabled"}
    assert {a["lowlevel_raw"] for a in att} == {"low-level check disabled"}


@pytest.mark.parametrize("sets, needle", [
    ({"roles.prefilter.num_gpus": 32}, "roles.prefilter: each actor needs 32 GPUs, more than the 16 GPUs of this cluster"),
    ({"roles.editor.actors": 12}, "the role pools need 18 GPUs (t2i 1x1, gate 1x1, editor 12x1, prefilter 1x4)"),
    ({"roles.editor.actors": 12, "ray.autoscaling_max_gpus": 8}, "more than the autoscaler's limit of 8"),
])
def test_pools_that_can_never_fit_fail_before_work(ray_local, tmp_path, sets, needle):
    with pytest.raises(RunError) as e:
        run(small_config(**sets), tmp_path / "nofit")
    assert needle in str(e.value)
    assert not (tmp_path / "nofit").exists()  # nothing created: a corrected command starts afresh there


def test_a_model_that_fails_to_load_fails_the_run_at_once(ray_local, tmp_path):
    """The folder exists (preflight passes) but holds no loadable checkpoint: the gate's actor fails
    in setup() while the other pools start; the run stops with one line naming the role."""
    broken = tmp_path / "broken-vlm"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    t0 = time.monotonic()
    with pytest.raises(RunError, match=r"^roles\.gate: an actor failed to start: \w+") as e:
        run(small_config(**{**sim_except("gate"), "roles.gate.backend": "transformers", "roles.gate.options.model": str(broken)}),
            tmp_path / "out")
    assert "\n" not in str(e.value) and time.monotonic() - t0 < 120
    assert not list((tmp_path / "out").glob("data/attempts-*.parquet"))
    # the failed start left no run state: the corrected command is a new run, not "another config"
    assert not (tmp_path / "out" / "state" / "run.json").exists()
    assert open_output(small_config(), str(tmp_path / "out")).mode == "new"
