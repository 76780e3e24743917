import subprocess
import sys

import pytest

from nhr_ray.config import PAPER_BUCKETS, ConfigError, load_config, validate_config


def test_paper_defaults():
    cfg = load_config()
    assert cfg.sources.seeds_per_prompt == 10
    assert cfg.edit.attempts_per_instruction == 5
    assert (cfg.validation.min_adherence, cfg.validation.min_aesthetics) == (4.7, 4.7)
    assert cfg.lowlevel.pixel_threshold == 40 and cfg.lowlevel.min_largest_component_share == 0.005
    assert cfg.lowlevel.connectivity == 4
    assert len(cfg.sources.buckets) == 26 and list(map(tuple, cfg.sources.buckets)) == PAPER_BUCKETS
    assert cfg.inversion.forbidden_words == ["revert", "undo", "restore"]
    assert all(getattr(cfg.roles, r).backend == "sim" for r in ("designer", "t2i", "gate", "editor"))


def test_every_field_is_documented():
    from pydantic import BaseModel

    from nhr_ray.config import RunConfig

    missing = []

    def walk(model: type[BaseModel], prefix: str):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            elif not f.description and name not in ("seed",) and not prefix.startswith("roles."):
                missing.append(prefix + name)

    walk(RunConfig, "")
    # fields whose meaning is obvious from the name still carry a description where non-trivial
    assert len(missing) < 12, missing


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["edit.attempts_per_instrction=3"], "edit.attempts_per_instrction: unknown key"),
        (["edit.attempts_per_instruction=many"], "edit.attempts_per_instruction"),
        (["edit.attempts_per_instruction=0"], "edit.attempts_per_instruction"),
        (["roles.editor.backend=nonesuch"], "roles.editor.backend"),
        (["roles.editor.options.bogus=1"], "roles.editor.options"),
        (["scheduler.budget_gpu_hours=-1"], "scheduler.budget_gpu_hours"),
        (["sources.buckets=[[64, 1024]]"], "sources.buckets"),
        (["sim.category_difficulty={telepathy: 2}"], "sim.category_difficulty"),
        (["nonsense"], "dotted.key=value"),
    ],
)
def test_bad_config_names_the_key(sets, needle):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=sets)
    assert needle in str(e.value)


def test_overrides_and_files(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("edit:\n  attempts_per_instruction: 3\ntask:\n  description: 'braces {x} and $y survive'\n")
    cfg = load_config(p, overrides=["seed=7", "scheduler.budget_gpu_hours=null"])
    assert cfg.edit.attempts_per_instruction == 3 and cfg.seed == 7
    assert cfg.scheduler.budget_gpu_hours is None
    assert cfg.task.description == "braces {x} and $y survive"
    (tmp_path / "bad.yaml").write_text("edit: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="nope")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        (tmp_path / "list.yaml").write_text("- 1\n")
        load_config(tmp_path / "list.yaml")


def test_setting_some_fields_of_a_role_keeps_its_other_defaults(tmp_path):
    # the pre-filter's 72B spans 4 GPUs: naming its actor count must not turn it into a 1-GPU actor
    cfg = load_config(overrides=["roles.prefilter.actors=2", "roles.editor.num_gpus=0.5"])
    assert (cfg.roles.prefilter.actors, cfg.roles.prefilter.num_gpus) == (2, 4)
    assert (cfg.roles.editor.actors, cfg.roles.editor.num_gpus) == (2, 0.5)
    p = tmp_path / "c.yaml"
    p.write_text("roles:\n  prefilter:\n    max_in_flight: 3\n")
    assert load_config(p).roles.prefilter.num_gpus == 4
    assert load_config(overrides=["roles.prefilter.num_gpus=1"]).roles.prefilter.num_gpus == 1


def test_validate_rejects_wrong_types():
    with pytest.raises(ConfigError, match="seed"):
        validate_config({"seed": "abc"})


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nhr_ray", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_config_show_and_bad_config_fails_before_work(tmp_path):
    r = _cli("config", "--show", "--set", "edit.attempts_per_instruction=4")
    assert r.returncode == 0 and "attempts_per_instruction: 4" in r.stdout
    out = tmp_path / "run"
    r = _cli("run", "--out", str(out), "--set", "gate.enabled=perhaps")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "gate.enabled" in r.stderr
    assert not out.exists()  # nothing was started


def test_cli_backends_lists_every_role():
    r = _cli("backends")
    assert r.returncode == 0
    for role in ("designer", "t2i", "gate", "editor", "prefilter", "validator", "inverter"):
        assert f"{role}:" in r.stdout
    assert "SIMULATION" in r.stdout
