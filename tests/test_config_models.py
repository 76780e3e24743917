"""models.root and the tiny-real preset validate; the preset's options are real options."""

from importlib import resources

import pytest
import yaml

from nhr_ray.config import ConfigError, apply_override, presets, validate_config


def _tiny_real() -> dict:
    data = yaml.safe_load(resources.files("nhr_ray.presets").joinpath("tiny-real.yaml").read_text())
    assert data.pop("extends") == "default"
    return data


def test_models_root_is_a_typed_section_settable_from_the_command_line():
    data = _tiny_real()
    apply_override(data, "models.root=/data/tiny")
    cfg = validate_config(data)
    assert cfg.models.root == "/data/tiny"
    assert cfg.roles.editor.backend == "diffusers" and cfg.roles.gate.backend == "transformers"
    with pytest.raises(ConfigError, match="models.rot: unknown key"):
        validate_config({"models": {"rot": "/x"}})


def test_a_bad_backend_option_in_the_preset_would_name_its_key():
    data = _tiny_real()
    data["roles"]["editor"]["options"]["steps"] = 40
    with pytest.raises(ConfigError, match=r"roles.editor.options: .*steps 40 outside 1\.\.28"):
        validate_config(data)


@pytest.mark.skipif("default" not in presets(), reason="the default preset arrives with the runtime on main")
def test_tiny_real_preset_loads_on_top_of_default():
    from nhr_ray.config import load_config

    cfg = load_config(preset="tiny-real", overrides=["models.root=/m"])
    assert cfg.roles.t2i.backend == "flux" and cfg.models.root == "/m" and cfg.sources.buckets[1] == (80, 48)
