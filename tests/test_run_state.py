"""The run's state in its output folder: one list of the fields a resumed or extended run may change,
used by both the run's own check and the scheduler's checkpoint; bad input leaves nothing behind."""

import fnmatch

import pytest

from nhr_ray.config import load_config
from nhr_ray.resumable import RESUMABLE, differences, flat_config
from nhr_ray.runtime.pipeline import RunError, open_output
from nhr_ray.scheduler.core import scheduler_config_hash as config_hash  # the checkpoint's key

BASE = load_config()


def test_every_resumable_pattern_names_real_fields_and_says_why():
    keys = flat_config(BASE)
    for pattern, reason in RESUMABLE.items():
        assert any(fnmatch.fnmatchcase(k, pattern) for k in keys), f"{pattern} matches no config field"
        assert len(reason) > 10


@pytest.mark.parametrize("sets", [
    ["scheduler.budget_gpu_hours=99"], ["scheduler.budget_gpu_hours=null"], ["roles.editor.actors=7"],
    ["roles.prefilter.max_in_flight=5"], ["ray.autosize=true"], ["ray.local_num_gpus=64"], ["output.progress=false"],
    ["output.shard_rows=5"], ["api.gemini.timeout_s=5"], ["api.max_cost_usd=20"], ["scheduler.checkpoint_every_s=5"],
])  # fmt: skip
def test_what_may_differ_is_one_rule_for_the_run_and_its_checkpoint(sets, tmp_path):
    cfg = load_config(overrides=sets)
    assert differences(flat_config(BASE), flat_config(cfg)) == [] and config_hash(cfg) == config_hash(BASE)
    out = open_output(BASE, str(tmp_path / "r"))
    out.commit()
    assert open_output(cfg, str(tmp_path / "r")).mode == "resumed"


@pytest.mark.parametrize("sets, field", [
    (["seed=5"], "seed"), (["roles.editor.num_gpus=2"], "roles.editor.num_gpus"), (["edit.batch_size=3"], "edit.batch_size"),
    (["roles.editor.options={max_steps: 20}"], "roles.editor.options"), (["scheduler.unit=job"], "scheduler.unit"),
    (["api.openai.model=o4-mini"], "api.openai.model"), (["output.image_format=webp"], "output.image_format"),
])  # fmt: skip
def test_everything_else_is_refused_naming_the_field(sets, field, tmp_path):
    cfg = load_config(overrides=sets)
    assert differences(flat_config(BASE), flat_config(cfg)) == [field] and config_hash(cfg) != config_hash(BASE)
    out = open_output(BASE, str(tmp_path / "r"))
    out.commit()
    with pytest.raises(RunError, match=f"another config \\(differs at {field}\\)"):
        open_output(cfg, str(tmp_path / "r"))


@pytest.mark.parametrize("args, field", [
    (["--seed", "-5"], "seed"), (["--seed", str(2**64)], "seed"), (["--budget-gpu-hours", "inf"], "scheduler.budget_gpu_hours"),
    (["--budget-gpu-hours", "-1"], "scheduler.budget_gpu_hours"),
])  # fmt: skip
def test_bad_seed_or_budget_is_one_line_exit_2_and_no_folder(args, field, tmp_path, capsys):
    from nhr_ray.cli import main

    assert main(["run", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_a_new_run_writes_nothing_until_it_starts_work_and_a_failed_start_is_undone(tmp_path):
    out = open_output(BASE, str(tmp_path / "r"))
    assert out.mode == "new" and not (tmp_path / "r").exists()
    out.commit()
    (tmp_path / "r" / "state" / "design-0000.json").write_text("{}")  # design answers only: no data yet
    assert out.discard() and not (tmp_path / "r").exists()
    (tmp_path / "kept").mkdir()  # a folder the user made stays, empty
    out = open_output(BASE, str(tmp_path / "kept"))
    out.commit()
    assert out.discard() and (tmp_path / "kept").exists() and not list((tmp_path / "kept").iterdir())
    out = open_output(BASE, str(tmp_path / "data"))
    out.commit()
    (tmp_path / "data" / "data").mkdir()
    (tmp_path / "data" / "data" / "sources-00000.parquet").write_bytes(b"PAR1")
    assert not out.discard() and (tmp_path / "data" / "state" / "run.json").exists()  # it recorded data: kept
