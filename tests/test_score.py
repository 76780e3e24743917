"""Cross-dataset scoring (paper Table 4) of a foreign Parquet dataset with its own column names."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import sim_except, small_config
from nhr_ray.cli import main
from nhr_ray.io.images import encode
from nhr_ray.products.score import sample_rows, score_dataset
from nhr_ray.products.tables import InputError
from nhr_ray.roles import Answer, VisionJudge, register


@register("vlm", "test_reads_instruction", "TEST: answers the scores written in the instruction")
class ReadsInstruction(VisionJudge):
    """A judge whose answer is a function of what it is sent: '... [4.5 3.0]' -> those scores,
    anything else -> prose (an unparseable answer). It also checks it was given two real images."""

    def ask(self, requests):
        out = []
        for r in requests:
            assert r.question == "edit_scores" and len(r.images) == 2 and r.images[0].ndim == 3
            if "[" in r.prompt:
                a, b = r.prompt.split("[", 1)[1].split("]", 1)[0].split()
                out.append(Answer(text=f'{{"adherence": {a}, "aesthetics": {b}}}'))
            else:
                out.append(Answer(text="Looks lovely to me."))
        return out


def _img(seed):
    return {"bytes": encode(np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)), "path": None}


@pytest.fixture
def foreign(tmp_path):
    rng = np.random.default_rng(0)
    rows, truth = [], []
    for i in range(120):
        a, b = round(float(rng.uniform(1, 5)), 2), round(float(rng.uniform(1, 5)), 2)
        rows.append({"id": i, "input": _img(i), "output": _img(1000 + i), "prompt": f"Make it blue [{a} {b}]"})
        truth.append((a, b))
    rows += [
        {"id": 120, "input": {"bytes": b"not an image", "path": None}, "output": _img(1), "prompt": "x [5 5]"},
        {"id": 121, "input": _img(2), "output": None, "prompt": "x [5 5]"},
        {"id": 122, "input": _img(3), "output": _img(4), "prompt": ""},
        {"id": 123, "input": _img(5), "output": _img(6), "prompt": "no scores here"},
    ]
    d = tmp_path / "foreign"
    d.mkdir()
    t = pa.Table.from_pylist(rows)
    pq.write_table(t.slice(0, 70), d / "part-0.parquet", row_group_size=16)
    pq.write_table(t.slice(70), d / "part-1.parquet", row_group_size=16)
    return d, truth


def _cfg():
    return small_config(**{**sim_except("validator"), "roles.validator.backend": "test_reads_instruction"})


def _sets(real_validator: str) -> list[str]:
    """--set arguments naming every role: `real_validator` for the validator, sim for the rest."""
    return [a for k, v in {**sim_except("validator"), "roles.validator.backend": real_validator}.items() for a in ("--set", f"{k}={v}")]


def test_scores_every_row_and_counts_the_unscorable(foreign):
    d, truth = foreign
    r = score_dataset(str(d), _cfg(), n=10_000, source_col="input", edited_col="output", instruction_col="prompt")
    assert r["sampled"] == 124 and r["scored"] == 120
    assert r["unscorable"] == {"source_not_an_image": 1, "edited_missing_image": 1, "missing_instruction": 1,
                               "answer_no_json": 1}  # fmt: skip
    t = np.array(truth)
    assert r["mean_adherence"] == pytest.approx(t[:, 0].mean())
    assert r["mean_aesthetics"] == pytest.approx(t[:, 1].mean())
    assert r["mean_geometric"] == pytest.approx(np.sqrt(t[:, 0] * t[:, 1]).mean())


def test_sample_is_reproducible_and_spans_files(foreign):
    d, _ = foreign
    files = sorted(d.glob("*.parquet"))
    ids = lambda seed: [row["id"] for _, row in sample_rows(files, 30, seed, ["id"])]  # noqa: E731
    a, b, c = ids(7), ids(7), ids(8)
    assert a == b and a != c and len(set(a)) == 30 and a == sorted(a)
    assert any(i < 70 for i in a) and any(i >= 70 for i in a)


def test_cli_table4_row_and_missing_column(foreign, tmp_path, capsys):
    d, _ = foreign
    rc = main(["score", str(d), "--n", "50", "--source-col", "input", "--edited-col", "output", "--instruction-col",
               "prompt", *_sets("test_reads_instruction"), "--json", str(tmp_path / "r.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "adherence" in out and "geo mean" in out
    assert json.loads((tmp_path / "r.json").read_text())["sampled"] == 50
    assert main(["score", str(d), "--n", "5", *_sets("test_reads_instruction")]) == 2  # NHR-Edit column names are not in this dataset
    assert "source_image" in capsys.readouterr().err
    with pytest.raises(InputError, match="no Parquet"):
        score_dataset(str(tmp_path / "nothing"), _cfg())


def test_sim_validator_without_truth_answers(foreign):
    d, _ = foreign
    r = score_dataset(str(d), small_config(), n=40, source_col="input", edited_col="output", instruction_col="prompt",
                      allow_simulated_judge=True)  # fmt: skip
    assert r["sampled"] == 40 and r["scored"] + sum(r["unscorable"].values()) == 40 and r["scored"] > 20
    assert 1.0 <= r["mean_adherence"] <= 5.0
    assert r["simulated_judge"] is True and r["made_by_simulation"] is False


FOREIGN_COLS = ["--source-col", "input", "--edited-col", "output", "--instruction-col", "prompt"]


def test_a_simulated_judge_on_foreign_data_is_refused_with_exit_2(foreign, tmp_path, capsys):
    """`nhr-ray score DATASET` with no config is the simulated validator: on a dataset the simulation
    did not make (no nhr-ray manifest) it prints no Table 4 row and exits 2, naming the flag."""
    d, _ = foreign
    assert main(["score", str(d), "--n", "20", *FOREIGN_COLS, "--json", str(tmp_path / "r.json")]) == 2
    out, err = capsys.readouterr()
    assert "adherence" not in out and not (tmp_path / "r.json").exists()
    assert "SIMULATED judge" in err and "no nhr-ray manifest" in err and "--allow-simulated-judge" in err
    # a manifest of a run whose editor was real: still not the simulation's data
    (d / "manifest.json").write_text(json.dumps({"simulated_roles": ["designer", "t2i", "validator"]}))
    try:
        assert main(["score", str(d), "--n", "20", *FOREIGN_COLS]) == 2
        assert "made its images with real editor" in capsys.readouterr().err
    finally:
        (d / "manifest.json").unlink()


def test_the_flag_scores_and_every_output_names_it(foreign, tmp_path, capsys):
    d, _ = foreign
    js = tmp_path / "r.json"
    assert main(["score", str(d), "--n", "20", *FOREIGN_COLS, "--allow-simulated-judge", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("SIMULATED validator") and "did NOT make (--allow-simulated-judge)" in out
    r = json.loads(js.read_text())
    assert r["simulated_judge"] is True and r["allow_simulated_judge"] is True and r["made_by_simulation"] is False
    assert r["validator"] == "sim" and r["sampled"] == 20


def test_a_simulated_judge_on_the_simulations_own_run_needs_no_flag(foreign, capsys):
    """A dataset inside a run whose t2i and editor were simulated (its manifest, two folders up) is the
    simulation's own: scored without the flag, still labelled."""
    d, _ = foreign
    run = d.parent / "simrun"
    (run / "data").mkdir(parents=True, exist_ok=True)
    for f in d.glob("*.parquet"):
        (run / "data" / f.name).write_bytes(f.read_bytes())
    (run / "manifest.json").write_text(json.dumps({"simulated_roles": ["designer", "t2i", "gate", "editor", "validator"]}))
    assert main(["score", str(run / "data"), "--n", "10", *FOREIGN_COLS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SIMULATED validator (roles.validator.backend: sim) on data the simulation made")


def test_an_ensemble_config_is_refused_not_scored_with_one_of_its_judges(foreign):
    """`score` asks one judge; an ensemble config must not be scored silently with roles.validator alone."""
    d, _ = foreign
    cfg = small_config(**{**sim_except("validator"), "roles.validator.backend": "test_reads_instruction",
                          "judging.ensemble.judges": "[{name: a, backend: sim}, {name: b, backend: sim}]"})  # fmt: skip
    with pytest.raises(InputError, match="ensemble validator"):
        score_dataset(str(d), cfg, n=10, source_col="input", edited_col="output", instruction_col="prompt")
