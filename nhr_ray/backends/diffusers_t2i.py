"""Source images (stage 2) with a diffusers FluxPipeline; FLUX.1-schnell by default (4 steps, no
guidance). Images of one size are batched; each image has its own seeded generator, so
(prompt, seed, size) reproduces an image whatever else shares its batch."""

from __future__ import annotations

from pydantic import Field

from nhr_ray.backends._common import (
    CallTimer,
    TorchOptions,
    apply_speedups,
    check_local_model,
    cpu_generator,
    dtype_kwarg,
    error_text,
    model_size,
    require,
    resize,
    resolve_model,
    to_uint8,
    torch_device,
    torch_dtype,
)
from nhr_ray.roles import Answer, ImageGenerator, T2IRequest


class FluxOptions(TorchOptions):
    model: str = Field("black-forest-labs/FLUX.1-schnell", description="FLUX checkpoint: hub id or folder.")
    steps: int = Field(4, ge=1, le=100, description="Denoising steps (schnell: 4, dev: 28-50).")
    guidance_scale: float = Field(0.0, ge=0, description="Distilled guidance (schnell ignores it: 0).")
    max_sequence_length: int = Field(256, ge=16, le=512, description="T5 prompt tokens (schnell: at most 256).")
    batch_size: int = Field(4, ge=1, description="Images per pipeline call, all of one size.")
    size_multiple: int = Field(
        16, ge=1, description="Sides are snapped to this; other requested sizes are rendered snapped and resized."
    )
    cpu_offload: bool = Field(False, description="enable_model_cpu_offload(): fits small GPUs, slower.")
    fuse_qkv_projections: bool = Field(False, description="Fuse the transformer's q/k/v projections.")
    compile: bool = Field(False, description="torch.compile the transformer (first call of each size is slow).")
    attention_backend: str | None = Field(None, description="diffusers attention backend, e.g. 'flash', '_native_cudnn'.")


class FluxGenerator(ImageGenerator):
    """FLUX text-to-image via diffusers (FLUX.1-schnell by default)."""

    name = "flux"
    Options = FluxOptions
    options: FluxOptions

    @classmethod
    def preflight(cls, options, context) -> None:
        require("torch", "pip install torch")
        require("diffusers", "pip install 'diffusers>=0.32'")
        require("transformers", "pip install transformers")
        check_local_model(options, context)

    def setup(self) -> None:
        from diffusers import FluxPipeline

        o = self.options
        self.device = torch_device(o.device)
        dtype = torch_dtype(o.dtype, self.device)
        self.pipe = FluxPipeline.from_pretrained(resolve_model(o, self.context), **dtype_kwarg(dtype))
        if o.cpu_offload and self.device.type == "cuda":
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        apply_speedups(self.pipe, fuse_qkv=o.fuse_qkv_projections, compile=o.compile, attention_backend=o.attention_backend)
        self.multiple = max(o.size_multiple, self.pipe.vae_scale_factor * 2)

    def teardown(self) -> None:
        self.pipe = None

    def generate(self, requests: list[T2IRequest]) -> list[Answer]:
        timer = CallTimer(self.context)
        answers = [Answer() for _ in requests]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(requests):
            if not isinstance(r.prompt, str) or not r.prompt.strip():
                answers[i].error = "empty prompt"
            elif r.width < 1 or r.height < 1:
                answers[i].error = f"bad size {r.width}x{r.height}"
            else:
                groups.setdefault(model_size(r.width, r.height, self.multiple), []).append(i)
        bs = self.options.batch_size
        for (w, h), idx in groups.items():
            for k in range(0, len(idx), bs):
                self._run([requests[i] for i in idx[k : k + bs]], [answers[i] for i in idx[k : k + bs]], w, h)
        return timer.charge(answers)

    def _run(self, reqs: list[T2IRequest], outs: list[Answer], w: int, h: int) -> None:
        """One pipeline call; if it fails, each item alone, so one bad item fails only itself."""
        try:
            images = self._call([r.prompt for r in reqs], [r.seed for r in reqs], w, h)
        except Exception as e:  # noqa: BLE001  (a model error becomes the items' error)
            if len(reqs) > 1:
                for r, a in zip(reqs, outs):
                    self._run([r], [a], w, h)
                return
            outs[0].error = error_text(e)
            return
        for r, a, img in zip(reqs, outs, images):
            a.image = resize(img, r.width, r.height)
            a.meta["steps"] = self.options.steps
            if (w, h) != (r.width, r.height):
                a.meta["resized"] = {"model": [w, h], "output": [r.width, r.height]}

    def _call(self, prompts: list[str], seeds: list[int], w: int, h: int) -> list:
        import torch

        o = self.options
        with torch.inference_mode():
            out = self.pipe(
                prompt=prompts,
                height=h,
                width=w,
                num_inference_steps=o.steps,
                guidance_scale=o.guidance_scale,
                max_sequence_length=o.max_sequence_length,
                generator=[cpu_generator(s) for s in seeds],
                output_type="np",
            )
        return [to_uint8(x) for x in out.images]
