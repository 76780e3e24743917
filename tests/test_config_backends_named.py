"""Never simulated by accident (issue 17): a config that names a real backend for any role names every
role's; a config that names none is the simulation, and says which roles it simulates."""

import subprocess
import sys

import pytest
import yaml

from nhr_ray.config import ConfigError, load_config, presets, validate_config
from nhr_ray.config.load import preset_layers
from nhr_ray.roles import ROLE_KINDS

ALL_REAL = {"designer": "openai", "t2i": "flux", "gate": "transformers", "editor": "diffusers",
            "prefilter": "vllm", "validator": "gemini", "inverter": "gemini"}  # fmt: skip
UNSET = ["designer", "gate", "prefilter", "validator", "inverter"]


def _names_every_unset_role(msg: str) -> None:
    assert all(f"roles.{r}.backend" in msg for r in UNSET), msg
    assert "roles.t2i.backend" not in msg.split(":")[1] and "not named" in msg and "t2i: flux" in msg


def test_naming_some_real_backends_is_an_error_naming_every_unset_role(tmp_path):
    """The issue's case: only t2i and editor set; before, the other five silently ran on `sim`."""
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["roles.t2i.backend=flux", "roles.editor.backend=diffusers"])
    _names_every_unset_role(str(e.value))
    f = tmp_path / "mixed.yaml"
    f.write_text(yaml.safe_dump({"roles": {"t2i": {"backend": "flux"}, "editor": {"backend": "diffusers"}}}))
    with pytest.raises(ConfigError) as e:
        load_config(f)
    _names_every_unset_role(str(e.value))
    with pytest.raises(ConfigError) as e:  # a config built in Python, not from YAML
        validate_config({"roles": {"t2i": {"backend": "flux"}, "editor": {"backend": "diffusers"}}})
    _names_every_unset_role(str(e.value))
    # through the CLI: `nhr-ray config --show` fails before any work, exit 2
    proc = subprocess.run([sys.executable, "-m", "nhr_ray", "config", "--show", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2 and "roles.gate.backend" in proc.stderr and "backend: sim" not in proc.stdout


def test_naming_the_rest_sim_loads_and_lists_them_simulated(tmp_path):
    f = tmp_path / "mixed.yaml"
    f.write_text(yaml.safe_dump({"roles": {**{r: {"backend": "sim"} for r in UNSET},
                                           "t2i": {"backend": "flux"}, "editor": {"backend": "diffusers"}}}))  # fmt: skip
    cfg = load_config(f)
    assert cfg.role("t2i").backend == "flux" and cfg.simulated_roles() == UNSET
    assert load_config(overrides=[f"roles.{r}.backend={b}" for r, b in ALL_REAL.items()]).simulated_roles() == []


def test_a_config_naming_no_backend_is_the_simulation_and_says_so(tmp_path):
    f = tmp_path / "plain.yaml"
    f.write_text("task: {num_scenes: 5}\nroles: {editor: {actors: 3}, validator: {backend: sim}}\n")
    cfg = load_config(f)
    assert all(cfg.role(r).backend == "sim" for r in ROLE_KINDS) and cfg.role("editor").actors == 3
    assert cfg.simulated_roles() == list(ROLE_KINDS)
    from nhr_ray.config import RunConfig

    assert RunConfig().simulated_roles() == list(ROLE_KINDS)  # the embedded default


def test_an_unknown_backend_is_named_as_unknown_not_as_unset_roles():
    with pytest.raises(ConfigError, match=r"roles\.editor\.backend: .*unknown backend 'smi'"):
        load_config(overrides=["roles.editor.backend=smi"])


@pytest.mark.parametrize("name", ["default", "api", "tiny-real"])
def test_every_preset_names_every_roles_backend_itself(name):
    """Each preset's own layers (default included) name all seven backends: none is inherited."""
    assert name in presets()
    named = {r for _, layer in preset_layers(name) for r, v in (layer.get("roles") or {}).items() if "backend" in v}
    assert named == set(ROLE_KINDS)
    cfg = load_config(preset=name)
    want = {"default": list(ROLE_KINDS), "api": ["t2i", "gate", "editor", "prefilter"], "tiny-real": ["designer", "inverter"]}
    assert cfg.simulated_roles() == want[name]


def test_presets_extended_by_a_user_config_keep_loading(tmp_path):
    """Old configs that were unambiguous still load: extending api or tiny-real, or changing a role of it."""
    f = tmp_path / "api-more.yaml"
    f.write_text("extends: api\nroles: {validator: {actors: 4}, gate: {backend: sim, actors: 2}}\n")
    assert load_config(f).role("validator").backend == "gemini"
    assert load_config(preset="api", overrides=["roles.prefilter.backend=vllm"]).simulated_roles() == ["t2i", "gate", "editor"]
    assert load_config(preset="tiny-real", overrides=["roles.inverter.backend=gemini"]).simulated_roles() == ["designer"]


def test_unused_roles_are_not_listed_simulated(tmp_path):
    """Photo sources need no designer or T2I; a disabled gate, pre-filter or inversion leaves no output."""
    cfg = load_config(overrides=["sources.kind=images", f"sources.images={tmp_path}", "gate.enabled=false",
                                 "prefilter.enabled=false", "inversion.enabled=false"])  # fmt: skip
    assert cfg.simulated_roles() == ["editor", "validator"]
