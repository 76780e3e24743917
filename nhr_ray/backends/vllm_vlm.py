"""Judges on a vLLM engine that lives inside the Ray actor (the 72B pre-filter's usual home): the whole
batch goes to one LLM.generate() call, and a request that carries a JSON schema is decoded under it
(vLLM's structured outputs) so score answers parse. Raw text comes back; the stages parse it.
A LoRA adapter (`lora`) is served by the engine itself (`enable_lora=True`, one `LoRARequest` with
every generate() call), not merged: the base weights load as they are."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nhr_ray.backends._common import (
    CallTimer,
    ModelOptions,
    check_local_model,
    error_text,
    image_error,
    require,
    resolve_model,
)
from nhr_ray.backends.transformers_vlm import chat_messages, check_lora, load_processor, lora_path
from nhr_ray.roles import Answer, BackendContext, VisionJudge, VLMRequest

INSTALL_HINT = "pip install 'nhr-ray[vllm]' (Linux with a CUDA GPU)"


class VLLMOptions(ModelOptions):
    model: str = Field("Qwen/Qwen2.5-VL-72B-Instruct", description="Checkpoint: hub id or folder.")
    tensor_parallel_size: int | None = Field(
        None, ge=1, description="GPUs the engine shards over; None: the GPUs the actor holds (roles.<role>.num_gpus)."
    )
    max_model_len: int = Field(8192, ge=256, description="Context length (two ~1 MP images are ~2,800 tokens).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of each GPU's memory vLLM may take.")
    limit_mm_per_prompt: dict[str, int] = Field(
        default_factory=lambda: {"image": 2}, description="Most items per modality in one prompt."
    )
    dtype: Literal["auto", "bfloat16", "float16"] = Field("auto", description="Weights dtype.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy).")
    max_tokens: int = Field(32, ge=1, description="Answer budget per request.")
    structured_output: bool = Field(True, description="Decode under VLMRequest.json_schema where the request has one.")
    min_pixels: int | None = Field(None, ge=1, description="Image processor's lower pixel bound.")
    max_pixels: int | None = Field(None, ge=1, description="Image processor's upper pixel bound.")
    load_format: str = Field("auto", description="'dummy': random weights of full size (benchmarks).")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs (faster start, slower steps).")
    seed: int | None = Field(None, description="Engine seed; None: the run seed.")
    system_prompt: str | None = Field(None, description="System turn; None: the chat template's default.")
    engine_args: dict[str, Any] = Field(default_factory=dict, description="More vllm.LLM keyword arguments, as they are.")
    lora: str | None = Field(
        None, description="LoRA adapter folder (absolute or under models_root) served with enable_lora; None: none."
    )
    max_lora_rank: int = Field(16, ge=1, description="The engine's max_lora_rank: at least the adapter's rank `r`.")


def engine_kwargs(o: VLLMOptions, context: BackendContext, path: str) -> dict[str, Any]:
    """Keyword arguments of vllm.LLM for these options (pure: no vllm import)."""
    mm_kwargs = {k: v for k, v in (("min_pixels", o.min_pixels), ("max_pixels", o.max_pixels)) if v is not None}
    kw: dict[str, Any] = dict(
        model=path,
        tensor_parallel_size=o.tensor_parallel_size or max(1, int(context.num_gpus)),
        max_model_len=o.max_model_len,
        gpu_memory_utilization=o.gpu_memory_utilization,
        limit_mm_per_prompt=dict(o.limit_mm_per_prompt),
        dtype=o.dtype,
        load_format=o.load_format,
        enforce_eager=o.enforce_eager,
        seed=o.seed if o.seed is not None else context.run_seed,
        mm_processor_kwargs=mm_kwargs or None,
    )
    if o.lora:
        kw.update(enable_lora=True, max_lora_rank=o.max_lora_rank, max_loras=1)
    return {**kw, **o.engine_args}


def structured_params(schema: dict) -> dict[str, Any]:
    """SamplingParams keywords that constrain decoding to a JSON schema, for old and new vLLM."""
    try:
        from vllm.sampling_params import StructuredOutputsParams  # vLLM >= 0.10.2

        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams  # vLLM 0.6 - 0.10

        return {"guided_decoding": GuidedDecodingParams(json=schema)}


class VLLMJudge(VisionJudge):
    """Qwen2.5-VL (or any vLLM vision model) judge on an in-actor vLLM engine."""

    name = "vllm"
    Options = VLLMOptions
    options: VLLMOptions

    @classmethod
    def preflight(cls, options, context) -> None:
        require("vllm", INSTALL_HINT)
        check_local_model(options, context)
        if options.lora:
            check_lora(options, context)

    def setup(self) -> None:
        from vllm import LLM

        o = self.options
        path = resolve_model(o, self.context)
        self.llm = LLM(**engine_kwargs(o, self.context, path))
        self.processor = load_processor(path, o.min_pixels, o.max_pixels)
        self.lora_request = None
        if o.lora:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("judge", 1, lora_path(o, self.context))

    def teardown(self) -> None:
        self.llm = None

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        timer = CallTimer(self.context)
        answers = [Answer() for _ in requests]
        ok: list[int] = []
        cap = self.options.limit_mm_per_prompt.get("image", 1)
        for i, r in enumerate(requests):
            err = next((e for e in (image_error(im) for im in r.images) if e), None)
            if err is None and len(r.images) > cap:
                err = f"{len(r.images)} images, limit_mm_per_prompt allows {cap}"
            if err:
                answers[i].error = err
            else:
                ok.append(i)
        if ok:
            self._run([requests[i] for i in ok], [answers[i] for i in ok])
        return timer.charge(answers)

    def engine_inputs(self, req: VLMRequest) -> tuple[dict, Any]:
        """One prompt dict for LLM.generate() and its SamplingParams."""
        from PIL import Image
        from vllm import SamplingParams

        o = self.options
        text = self.processor.apply_chat_template(chat_messages(req, o.system_prompt), tokenize=False, add_generation_prompt=True)
        prompt: dict[str, Any] = {"prompt": text}
        if req.images:
            prompt["multi_modal_data"] = {"image": [Image.fromarray(im) for im in req.images]}
        kw: dict[str, Any] = dict(temperature=o.temperature, max_tokens=req.max_tokens or o.max_tokens)
        if o.structured_output and req.json_schema:
            kw.update(structured_params(req.json_schema))
        return prompt, SamplingParams(**kw)

    def _run(self, reqs: list[VLMRequest], outs: list[Answer]) -> None:
        """The whole batch in one generate() call; if it fails, each request alone."""
        try:
            pairs = [self.engine_inputs(r) for r in reqs]
            results = self.llm.generate([p for p, _ in pairs], sampling_params=[s for _, s in pairs], use_tqdm=False,
                                        lora_request=self.lora_request)
        except Exception as e:  # noqa: BLE001  (one bad item must not fail its batch)
            if len(reqs) > 1:
                for r, a in zip(reqs, outs):
                    self._run([r], [a])
                return
            outs[0].error = error_text(e)
            return
        for a, res in zip(outs, results):
            comp = res.outputs[0]
            a.text = comp.text
            a.usage.update(input_tokens=float(len(res.prompt_token_ids or [])), output_tokens=float(len(comp.token_ids)))
            if comp.finish_reason:
                a.meta["finish_reason"] = comp.finish_reason
