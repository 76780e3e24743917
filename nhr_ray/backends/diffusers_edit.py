"""Instruction-guided editing (stage 5) with a diffusers pipeline: FLUX.1 Kontext, Qwen-Image-Edit or
InstructPix2Pix, chosen by option. Every attempt has its own seed. The edited image always comes back
at the source's size: where the model needs other sides (multiples of 16, a pixel budget) the source
is resized for the model and the result resized back, and Answer.meta["resized"] says so."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from nhr_ray.backends._common import (
    CallTimer,
    TorchOptions,
    apply_speedups,
    check_local_model,
    cpu_generator,
    dtype_kwarg,
    error_text,
    image_error,
    model_size,
    require,
    resize,
    resolve_model,
    to_uint8,
    torch_device,
    torch_dtype,
)
from nhr_ray.roles import Answer, BackendUnavailable, EditRequest, ImageEditor

# pipeline option -> (diffusers class, default guidance, default model)
PIPELINES: dict[str, tuple[str, float, str]] = {
    "flux_kontext": ("FluxKontextPipeline", 2.5, "black-forest-labs/FLUX.1-Kontext-dev"),
    "qwen_image_edit": ("QwenImageEditPipeline", 4.0, "Qwen/Qwen-Image-Edit"),
    "instruct_pix2pix": ("StableDiffusionInstructPix2PixPipeline", 7.5, "timbrooks/instruct-pix2pix"),
}


def qwen_edit_processor(cls, path: str) -> tuple[str, Any]:
    """(local checkpoint folder, its processor) for QwenImageEditPipeline.from_pretrained(folder, processor=...).

    The checkpoint records its processor as transformers' Qwen2VLProcessor, whose video half needs
    torchvision: without it from_pretrained fails ("Qwen2VLVideoProcessor requires the Torchvision
    library"). So the processor is loaded here from processor/ and passed in: the stock one where
    AutoProcessor can build it, else a Qwen2VLProcessor with no video processor over the same
    tokenizer, PIL image processor and chat template (transformers_vlm.load_processor)."""
    from pathlib import Path

    from nhr_ray.backends.transformers_vlm import load_processor

    local = Path(path) if Path(path).is_dir() else Path(cls.download(path))  # hub id: the cached snapshot
    sub = local / "processor"
    if not sub.is_dir():
        raise BackendUnavailable(f"{local} has no processor/ folder; is it a Qwen-Image-Edit checkpoint?")
    return str(local), load_processor(str(sub), base="Qwen2VLProcessor")


class DiffusersEditOptions(TorchOptions):
    model: str = Field("", description="Checkpoint: hub id or folder; empty: the pipeline's usual checkpoint.")
    pipeline: Literal["flux_kontext", "qwen_image_edit", "instruct_pix2pix"] = Field(
        "flux_kontext", description="Which diffusers pipeline class loads the checkpoint."
    )
    steps: int = Field(28, description="Denoising steps per attempt (paper: 18-28).")
    min_steps: int = Field(18, ge=1, description="Lowest allowed `steps` (guards against a typo'd budget).")
    max_steps: int = Field(28, ge=1, description="Highest allowed `steps`.")
    guidance_scale: float | None = Field(
        None, ge=0, description="Kontext: distilled guidance (2.5); Qwen: true_cfg_scale (4.0); Pix2Pix: text CFG (7.5)."
    )
    image_guidance_scale: float = Field(1.5, ge=0, description="InstructPix2Pix only: image CFG scale.")
    negative_prompt: str = Field(" ", description="Qwen-Image-Edit only: negative prompt for true CFG.")
    max_area: int | None = Field(
        1024 * 1024, ge=256, description="Larger sources are edited scaled down to this many pixels, then resized back."
    )
    size_multiple: int | None = Field(
        None, ge=1, description="Model sides are multiples of this; default: what the pipeline needs (16 for FLUX)."
    )
    condition_area: int | None = Field(
        None, ge=256, description="Qwen-Image-Edit only: pixel area of the copy of the source the model is conditioned on "
        "(VAE latents and VLM prompt); None: the pipeline's fixed 1024*1024. Smaller is faster and off-distribution.",
    )
    batch_size: int = Field(4, ge=1, description="Attempts per pipeline call (same model size only).")
    call_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments passed to the pipeline call as they are."
    )
    cpu_offload: bool = Field(False, description="enable_model_cpu_offload(): fits small GPUs, slower.")
    fuse_qkv_projections: bool = Field(False, description="Fuse the denoiser's q/k/v projections.")
    compile: bool = Field(False, description="torch.compile the denoiser.")
    attention_backend: str | None = Field(None, description="diffusers attention backend, e.g. 'flash'.")

    @model_validator(mode="after")
    def _steps_in_range(self):
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} > max_steps {self.max_steps}")
        if not self.min_steps <= self.steps <= self.max_steps:
            raise ValueError(f"steps {self.steps} outside {self.min_steps}..{self.max_steps} (set min_steps/max_steps)")
        return self

    def model_name(self) -> str:
        return self.model or PIPELINES[self.pipeline][2]


class DiffusersEditor(ImageEditor):
    """Instruction-guided editor via diffusers (FLUX.1 Kontext, Qwen-Image-Edit, InstructPix2Pix)."""

    name = "diffusers"
    Options = DiffusersEditOptions
    options: DiffusersEditOptions

    @classmethod
    def preflight(cls, options, context) -> None:
        require("torch", "pip install torch")
        require("diffusers", "pip install 'diffusers>=0.35' (Kontext and Qwen-Image-Edit need recent releases)")
        require("transformers", "pip install transformers")
        import diffusers

        cls_name = PIPELINES[options.pipeline][0]
        if not hasattr(diffusers, cls_name):
            raise BackendUnavailable(
                f"diffusers {diffusers.__version__} has no {cls_name}; pip install -U diffusers"
            )
        check_local_model(options.model_copy(update={"model": options.model_name()}), context)

    def setup(self) -> None:
        import diffusers

        o = self.options
        self.device = torch_device(o.device)
        dtype = torch_dtype(o.dtype, self.device)
        cls = getattr(diffusers, PIPELINES[o.pipeline][0])
        path = resolve_model(o.model_copy(update={"model": o.model_name()}), self.context)
        kw: dict[str, Any] = {}
        if o.pipeline == "instruct_pix2pix":
            kw.update(safety_checker=None, requires_safety_checker=False)
        elif o.pipeline == "qwen_image_edit":
            path, kw["processor"] = qwen_edit_processor(cls, path)
        self.pipe = cls.from_pretrained(path, **dtype_kwarg(dtype), **kw)
        if o.cpu_offload and self.device.type == "cuda":
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        apply_speedups(self.pipe, fuse_qkv=o.fuse_qkv_projections, compile=o.compile, attention_backend=o.attention_backend)
        vsf = self.pipe.vae_scale_factor
        self.multiple = o.size_multiple or (vsf if o.pipeline == "instruct_pix2pix" else vsf * 2)
        self.guidance = o.guidance_scale if o.guidance_scale is not None else PIPELINES[o.pipeline][1]
        self._dims_module = None
        if o.condition_area is not None and o.pipeline == "qwen_image_edit":
            # QwenImageEditPipeline.__call__ sizes its conditioning copy with the module-level
            # calculate_dimensions(1024 * 1024, ratio); no argument reaches it, so swap it per call
            import sys

            self._dims_module = sys.modules[type(self.pipe).__module__]
            if not callable(getattr(self._dims_module, "calculate_dimensions", None)):
                raise BackendUnavailable(
                    f"condition_area: {self._dims_module.__name__} has no calculate_dimensions in this diffusers"
                )

    def teardown(self) -> None:
        self.pipe = None

    def edit(self, requests: list[EditRequest]) -> list[Answer]:
        timer = CallTimer(self.context)
        answers = [Answer() for _ in requests]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(requests):
            err = image_error(r.image, min_side=2)
            if err is None and (not isinstance(r.instruction, str) or not r.instruction.strip()):
                err = "empty instruction"
            if err:
                answers[i].error = err
                continue
            h, w = r.image.shape[:2]
            groups.setdefault(model_size(w, h, self.multiple, self.options.max_area), []).append(i)
        bs = self.options.batch_size
        for size, idx in groups.items():
            for k in range(0, len(idx), bs):
                chunk = idx[k : k + bs]
                self._run([requests[i] for i in chunk], [answers[i] for i in chunk], size)
        return timer.charge(answers)

    def _run(self, reqs: list[EditRequest], outs: list[Answer], size: tuple[int, int]) -> None:
        """One pipeline call; if it fails, each attempt alone, so one bad item fails only itself."""
        w, h = size
        try:
            images = self._call([resize(r.image, w, h) for r in reqs], [r.instruction for r in reqs], [r.seed for r in reqs], w, h)
        except Exception as e:  # noqa: BLE001  (a model error becomes the items' error)
            if len(reqs) > 1:
                for r, a in zip(reqs, outs):
                    self._run([r], [a], size)
                return
            outs[0].error = error_text(e)
            return
        for r, a, img in zip(reqs, outs, images):
            sh, sw = r.image.shape[:2]
            a.image = resize(img, sw, sh)
            a.meta.update(steps=self.options.steps, pipeline=self.options.pipeline)
            if (w, h) != (sw, sh) or img.shape[:2] != (h, w):
                a.meta["resized"] = {"source": [sw, sh], "model": [int(img.shape[1]), int(img.shape[0])]}

    def _call(self, images: list[np.ndarray], prompts: list[str], seeds: list[int], w: int, h: int) -> list[np.ndarray]:
        import torch
        from PIL import Image

        o = self.options
        kw: dict[str, Any] = dict(
            image=[Image.fromarray(x) for x in images],
            prompt=prompts,
            num_inference_steps=o.steps,
            generator=[cpu_generator(s) for s in seeds],
            output_type="np",
        )
        if o.pipeline == "flux_kontext":
            # without these Kontext picks its own preferred resolution (NOTES.md)
            kw.update(height=h, width=w, max_area=h * w, _auto_resize=False, guidance_scale=self.guidance)
        elif o.pipeline == "qwen_image_edit":
            kw.update(height=h, width=w, true_cfg_scale=self.guidance, negative_prompt=[o.negative_prompt] * len(prompts))
        else:
            kw.update(guidance_scale=self.guidance, image_guidance_scale=o.image_guidance_scale)
        kw.update(o.call_kwargs)
        with torch.inference_mode(), self._condition_area():
            out = self.pipe(**kw)
        return [to_uint8(x) for x in out.images]

    @contextlib.contextmanager
    def _condition_area(self):
        """While set, Qwen-Image-Edit's conditioning copy has `condition_area` pixels, not 1024*1024."""
        mod = self._dims_module
        if mod is None:
            yield
            return
        original, area = mod.calculate_dimensions, self.options.condition_area
        mod.calculate_dimensions = lambda _target_area, ratio: original(area, ratio)
        try:
            yield
        finally:
            mod.calculate_dimensions = original
