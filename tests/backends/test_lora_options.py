"""`options.lora` on the transformers and vLLM judges: checked before work, passed to the engine."""

import importlib.util

import numpy as np
import pytest

from nhr_ray.backends.vllm_vlm import VLLMJudge, VLLMOptions, engine_kwargs
from nhr_ray.roles import BackendContext, BackendUnavailable, VLMRequest, backend_class

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _adapter(base, out):
    """An untrained peft adapter on the LLM layers of a checkpoint, saved like tune-judge saves one."""
    import transformers
    from peft import LoraConfig, get_peft_model

    from nhr_ray.products.tune.lora import TARGET_MODULES

    model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGET_MODULES)).save_pretrained(out)
    return out


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_preflight_names_a_missing_or_wrong_adapter_folder(backend, tiny_models, tmp_path):
    cls = backend_class("validator", backend)
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=0)
    if backend == "vllm" and not HAS_VLLM:  # the same check, without vllm's own import check in front of it
        from nhr_ray.backends.transformers_vlm import check_lora as check
    else:
        check = cls.preflight
    with pytest.raises(BackendUnavailable, match="lora: model folder '/nowhere/adapter' does not exist"):
        check(cls.Options(model=str(tiny_models["vlm"]), lora="/nowhere/adapter"), ctx)
    with pytest.raises(BackendUnavailable, match="holds no adapter_config.json"):
        check(cls.Options(model=str(tiny_models["vlm"]), lora=str(tmp_path)), ctx)


def test_vllm_engine_gets_enable_lora_and_keeps_the_base_weights(tiny_models):
    ctx = BackendContext(role="validator", run_seed=3, num_gpus=2)
    plain = engine_kwargs(VLLMOptions(model="m"), ctx, "/models/base")
    assert "enable_lora" not in plain and plain["model"] == "/models/base" and plain["tensor_parallel_size"] == 2
    kw = engine_kwargs(VLLMOptions(model="m", lora="/adapters/judge", max_lora_rank=32), ctx, "/models/base")
    assert kw["enable_lora"] is True and kw["max_lora_rank"] == 32 and kw["max_loras"] == 1
    assert kw["model"] == "/models/base" and kw["seed"] == 3  # the adapter is served over the base, not merged into it
    assert engine_kwargs(VLLMOptions(model="m", lora="/a", engine_args={"max_lora_rank": 64}), ctx, "/b")["max_lora_rank"] == 64


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable (pip install 'nhr-ray[vllm]', Linux + CUDA)")
def test_vllm_serves_the_adapter_with_every_request(tiny_models, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA device")
    adapter = _adapter(tiny_models["vlm"], tmp_path / "adapter")
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=1)
    j = VLLMJudge(VLLMOptions(model=str(tiny_models["vlm"]), lora=str(adapter), max_lora_rank=8, max_model_len=2048,
                              gpu_memory_utilization=0.3, enforce_eager=True), ctx)  # fmt: skip
    j.preflight(j.options, ctx)
    j.setup()
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    [a] = j.ask([VLMRequest("a", "edit_scores", "Score it.", [img, img])])
    assert a.error is None and isinstance(a.text, str) and j.lora_request.lora_path == str(adapter)


def test_transformers_judge_merges_an_adapter_and_answers(tiny_models, tmp_path):
    adapter = _adapter(tiny_models["vlm"], tmp_path / "adapter")
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=0)
    cls = backend_class("validator", "transformers")
    j = cls(cls.Options(model=str(tiny_models["vlm"]), lora=str(adapter), device="cpu", max_new_tokens=4), ctx)
    j.preflight(j.options, ctx)
    j.setup()
    assert not hasattr(j.model, "peft_config")  # merged (merge_lora default): a plain model answers
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    [a] = j.ask([VLMRequest("a", "edit_scores", "Score it.", [img, img])])
    assert a.error is None and isinstance(a.text, str)
