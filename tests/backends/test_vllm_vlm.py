"""vLLM judge: the engine test needs vllm (Linux + CUDA); option and preflight checks run anywhere."""

import importlib.util

import numpy as np
import pytest
from pydantic import ValidationError

from nhr_ray.backends.vllm_vlm import VLLMJudge, VLLMOptions
from nhr_ray.roles import BackendContext, BackendUnavailable, VLMRequest

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here; the missing-package message cannot be seen")
def test_preflight_without_vllm_says_how_to_install():
    with pytest.raises(BackendUnavailable, match=r"pip install 'nhr-ray\[vllm\]'"):
        VLLMJudge.preflight(VLLMOptions(), BackendContext(role="prefilter", run_seed=0, num_gpus=4))


def test_options_are_typed_and_closed():
    o = VLLMOptions(limit_mm_per_prompt={"image": 3}, max_model_len=4096)
    assert o.tensor_parallel_size is None and o.temperature == 0.0
    with pytest.raises(ValidationError, match="tensor_paralel_size"):
        VLLMOptions(tensor_paralel_size=2)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable (pip install 'nhr-ray[vllm]', Linux + CUDA)")
def test_engine_answers_a_batch_in_one_call_with_guided_json(tiny_models):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA device")
    ctx = BackendContext(role="prefilter", run_seed=0, num_gpus=1)
    j = VLLMJudge(VLLMOptions(model=str(tiny_models["vlm"]), max_model_len=2048, gpu_memory_utilization=0.3, enforce_eager=True), ctx)
    j.preflight(j.options, ctx)
    j.setup()
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    schema = {"type": "object", "properties": {"adherence": {"type": "number"}, "aesthetics": {"type": "number"}},
              "required": ["adherence", "aesthetics"]}  # fmt: skip
    answers = j.ask(
        [
            VLMRequest("a", "edit_scores", "Score it.", [img, img], json_schema=schema),
            VLMRequest("b", "plausibility", "Plausible?", [img]),
            VLMRequest("c", "plausibility", "Three images", [img, img, img]),
        ]
    )
    assert answers[0].error is None and answers[0].text.lstrip().startswith("{")
    assert answers[1].error is None and isinstance(answers[1].text, str)
    assert "limit_mm_per_prompt" in answers[2].error
