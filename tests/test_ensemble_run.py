"""The simulated ensemble validator through a whole run on Ray (issue 19): every judge's scores in the
attempts table, combined as the config says; the judge named 'validator' scores exactly as the single
validator of the same run does; `calibrate --judge` reads one judge's recorded scores, and its report
feeds combine: calibrated."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import small_config

from nhr_ray.config import load_config
from nhr_ray.products.calibrate import calibrate, write_report
from nhr_ray.products.tables import InputError

ENSEMBLE = {"judging.ensemble.judges": "[{name: validator}, {name: b}, {name: c}]", "judging.ensemble.min_judges": 2}


def _attempts(out) -> dict[str, dict]:
    cols = ["attempt_id", "adherence", "aesthetics", "validation_judges", "validation_outcome", "validation_reason"]
    t = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=cols)
    return {r["attempt_id"]: r for r in t.to_pylist()}


@pytest.fixture(scope="module")
def runs(ray_local, shared_run, tmp_path_factory):
    single, _ = shared_run("small", small_config())
    out = tmp_path_factory.mktemp("ens") / "run"
    from nhr_ray.runtime.pipeline import run

    res = run(small_config(**ENSEMBLE), out)
    return single, out, res


def test_every_judges_scores_are_kept_and_combined_by_the_mean(runs):
    _, out, res = runs
    att = [r for r in _attempts(out).values() if r["validation_outcome"] is not None]
    assert len(att) > 50
    for r in att:
        js = r["validation_judges"]
        assert [j["judge"] for j in js] == ["validator", "b", "c"]
        read = [j for j in js if j["adherence"] is not None]
        if len(read) >= 2:  # combined over the judges that answered readably
            assert r["adherence"] == pytest.approx(round(np.mean([j["adherence"] for j in read]), 4))
            assert r["aesthetics"] == pytest.approx(round(np.mean([j["aesthetics"] for j in read]), 4))
        else:
            assert r["adherence"] is None and r["validation_reason"].split(":")[0] in ("validator", "b", "c")
    judged = [r for r in att if all(j["adherence"] is not None for j in r["validation_judges"])]
    differ = [r for r in judged if len({j["adherence"] for j in r["validation_judges"]}) > 1]
    assert len(differ) > len(judged) / 2  # three judges, three views
    st = res["funnel"]["stages"]["validation"]
    assert st["in"] == len(att) and st["kept"] == sum(r["validation_outcome"] == "kept" for r in att)
    assert res["manifest"]["simulated_roles"].count("validator") == 1


def test_the_judge_named_validator_scores_as_the_single_validator(runs):
    """The same attempts reach stage 8 in both runs (only the validator differs), and the ensemble's
    'validator' gives each exactly the single validator's scores: each judge's errors are drawn under
    its own name, so adding judges changes no judge's view."""
    single, out, _ = runs
    one, ens = _attempts(single), _attempts(out)
    both = [k for k, r in one.items() if r["validation_outcome"] is not None]
    assert both and all(ens[k]["validation_outcome"] is not None for k in both)
    for k in both:
        [alone] = one[k]["validation_judges"]
        assert alone["judge"] == "validator" and (alone["adherence"], alone["aesthetics"]) == (one[k]["adherence"], one[k]["aesthetics"])
        assert ens[k]["validation_judges"][0] == alone


def test_calibrate_one_judge_of_the_run_and_combine_by_its_calibration(runs, tmp_path):
    _, out, _ = runs
    att = _attempts(out)
    rated = sorted(k for k, r in att.items() if r["validation_judges"] and r["validation_judges"][1]["adherence"] is not None)[:60]
    rng = np.random.default_rng(0)
    rows = [{"triplet": k, "rater": rater, "adherence": float(rng.integers(1, 6)), "aesthetics": float(rng.integers(1, 6))}
            for k in rated for rater in ("r1", "r2")]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ratings.parquet")
    rep = calibrate(tmp_path / "ratings.parquet", run_dir=out, judge="b", allow_simulated_judge=True)
    arr = rep["_arrays"]
    assert arr["ids"] == rated and rep["judge"]["ensemble_judge"] == "b"
    assert list(arr["pred"]["adherence"]) == [att[k]["validation_judges"][1]["adherence"] for k in rated]
    combined = calibrate(tmp_path / "ratings.parquet", run_dir=out, allow_simulated_judge=True)["_arrays"]["pred"]["adherence"]
    assert list(combined) != list(arr["pred"]["adherence"])
    with pytest.raises(InputError, match=r"no such judge; its judges: \['b', 'c', 'validator'\]"):
        calibrate(tmp_path / "ratings.parquet", run_dir=out, judge="nope", allow_simulated_judge=True)
    write_report(rep, tmp_path / "cal-b")
    report = json.loads((tmp_path / "cal-b" / "calibration.json").read_text())
    cfg = load_config(overrides=[
        f"judging.ensemble.judges=[{{name: validator, calibration: {tmp_path / 'cal-b' / 'calibration.json'}}}, "
        f"{{name: b, calibration: {tmp_path / 'cal-b' / 'calibration.json'}}}]", "judging.ensemble.combine=calibrated"])  # fmt: skip
    assert cfg.validator_judges()[1].bias["adherence"] == pytest.approx(report["axes"]["adherence"]["bias"])
    assert cfg.validator_judges()[1].error_sd["aesthetics"] == pytest.approx(report["axes"]["aesthetics"]["error_sd"])
