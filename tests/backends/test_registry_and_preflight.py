"""Real backends register lazily, resolve models under models.root, and fail preflight with a fix."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from nhr_ray.backends._common import resolve_model
from nhr_ray.roles import BackendContext, BackendUnavailable, backend_class, build_backend, list_backends

REAL = {"t2i": "flux", "editor": "diffusers", "gate": "transformers", "prefilter": "vllm", "validator": "openai_server"}


def test_importing_nhr_ray_and_listing_backends_imports_no_heavy_package():
    code = (
        "import sys, nhr_ray.backends; from nhr_ray.roles import list_backends; b = list_backends(); "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'vllm', 'openai') if m in sys.modules)); "
        "print(sorted(n for n, _ in b['gate']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert {"transformers", "vllm", "openai_server"} <= set(eval(out[1]))


def test_every_real_backend_resolves_and_documents_its_options():
    listed = list_backends()
    for role, name in REAL.items():
        cls = backend_class(role, name)
        assert cls.name == name and any(n == name and d for n, d in listed[role])
        for field, info in cls.Options.model_fields.items():
            assert info.description, f"{name}.{field} has no description"


def test_relative_models_resolve_under_the_run_config_models_root(tmp_path):
    (tmp_path / "flux-x").mkdir()
    run_config = SimpleNamespace(models=SimpleNamespace(root=str(tmp_path)))
    ctx = BackendContext(role="t2i", run_seed=0, num_gpus=1, run_config=run_config)
    gen = build_backend("t2i", "flux", {"model": "flux-x"}, ctx)
    assert resolve_model(gen.options, ctx) == str(tmp_path / "flux-x")
    gen.preflight(gen.options, ctx)  # exists: fine
    # the option wins over the run config
    other = tmp_path / "other"
    (other / "flux-x").mkdir(parents=True)
    gen2 = build_backend("t2i", "flux", {"model": "flux-x", "models_root": str(other)}, ctx)
    assert resolve_model(gen2.options, ctx) == str(other / "flux-x")


def test_preflight_rejects_missing_model_folders_but_lets_hub_ids_through(tmp_path):
    ctx = BackendContext(role="editor", run_seed=0, num_gpus=1)
    ed = build_backend("editor", "diffusers", {"model": str(tmp_path / "nope"), "pipeline": "instruct_pix2pix"}, ctx)
    with pytest.raises(BackendUnavailable, match="does not exist"):
        ed.preflight(ed.options, ctx)
    judge = build_backend("gate", "transformers", {"model": "missing-tiny", "models_root": str(tmp_path)}, ctx)
    with pytest.raises(BackendUnavailable, match=r"'missing-tiny' does not exist \(looked under models root"):
        judge.preflight(judge.options, ctx)
    hub = build_backend("gate", "transformers", {"model": "Qwen/Qwen2.5-VL-7B-Instruct"}, ctx)
    hub.preflight(hub.options, ctx)  # a hub id is not checked for existence here


def test_preflight_names_the_install_command_for_a_missing_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "diffusers" else real(n, *a))
    ctx = BackendContext(role="t2i", run_seed=0, num_gpus=1)
    gen = build_backend("t2i", "flux", {}, ctx)
    with pytest.raises(BackendUnavailable, match=r"'diffusers' is not installed; pip install 'diffusers"):
        gen.preflight(gen.options, ctx)


def test_tiny_models_command_builds_loadable_folders(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nhr_ray.testing.tiny_models", str(tmp_path), "--only", "vlm"],
        capture_output=True, text=True, check=True, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert "qwen25vl-tiny" in out.stdout
    names = {p.name for p in (tmp_path / "qwen25vl-tiny").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", ".complete"} <= names
