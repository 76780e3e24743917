"""What the real model backends share: where a model lives, which device and dtype, what a call
cost, and checks that turn one bad item into that item's error. Imports nothing heavy at import."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from nhr_ray.redact import redact
from nhr_ray.roles import Answer, BackendContext, BackendOptions, BackendUnavailable


class ModelOptions(BackendOptions):
    """Where a backend's weights are."""

    model: str = Field(description="Hub id, absolute folder, or folder relative to models_root.")
    models_root: str | None = Field(
        None, description="Folder that relative model paths live under; default: the run config's models.root."
    )


class TorchOptions(ModelOptions):
    """Options every in-process torch backend takes."""

    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cuda', 'cuda:1', 'cpu'.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights dtype; 'auto' is bfloat16 on cuda and float32 on cpu."
    )


def require(module: str, hint: str) -> None:
    """preflight helper: raise BackendUnavailable naming the install command if `module` is missing."""
    if importlib.util.find_spec(module) is None:
        raise BackendUnavailable(f"python package {module!r} is not installed; {hint}")


def models_root(options: ModelOptions, context: BackendContext) -> str | None:
    if options.models_root:
        return options.models_root
    models = getattr(context.run_config, "models", None)
    return getattr(models, "root", None)


def resolve_model(options: ModelOptions, context: BackendContext) -> str:
    """A local folder if the name is one (absolute, or under models_root), else the name as a hub id."""
    name = options.model
    p = Path(name).expanduser()
    if p.is_absolute():
        return str(p)
    root = models_root(options, context)
    if root is not None and (Path(root).expanduser() / name).exists():
        return str(Path(root).expanduser() / name)
    if p.exists():
        return str(p.resolve())
    return name


def check_local_model(options: ModelOptions, context: BackendContext) -> None:
    """preflight: a model that names a folder must exist; only 'org/name' may fall through to a hub."""
    resolved = resolve_model(options, context)
    if Path(resolved).exists():
        return
    root = models_root(options, context)
    where = f" (looked under models root {root!r})" if root else ""
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", options.model) is not None
    if options.model.startswith((".", "~", "/")) or not hub_like:
        raise BackendUnavailable(f"model folder {options.model!r} does not exist{where}")


def torch_device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def torch_dtype(spec: str, device):
    import torch

    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec)


def torch_seed(seed: int) -> int:
    return int(seed) % (2**63)


def cpu_generator(seed: int):
    """Noise is drawn on the CPU so (prompt, seed, size) gives the same image on any device."""
    import torch

    return torch.Generator("cpu").manual_seed(torch_seed(seed))


def image_error(img: Any, min_side: int = 1) -> str | None:
    """Why `img` is not an HxWx3 uint8 RGB array (None when it is)."""
    if not isinstance(img, np.ndarray):
        return f"image is {type(img).__name__}, expected a numpy array"
    if img.ndim != 3 or img.shape[2] != 3:
        return f"image has shape {img.shape}, expected HxWx3"
    if img.dtype != np.uint8:
        return f"image dtype is {img.dtype}, expected uint8"
    if min(img.shape[:2]) < min_side:
        return f"image is {img.shape[1]}x{img.shape[0]}, sides must be >= {min_side}"
    return None


def to_uint8(arr) -> np.ndarray:
    """A diffusers 'np' output (float in [0, 1], HxWxC) to uint8 RGB."""
    a = np.asarray(arr, dtype=np.float32)
    return np.ascontiguousarray((np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8))


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if img.shape[1] == width and img.shape[0] == height:
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.LANCZOS))


def model_size(width: int, height: int, multiple: int, max_area: int | None = None) -> tuple[int, int]:
    """The size a model runs at: scaled down to max_area if larger, each side a multiple of `multiple`
    (rounded to nearest, at least one multiple)."""
    scale = 1.0
    if max_area is not None and width * height > max_area:
        scale = (max_area / (width * height)) ** 0.5

    def snap(x: float) -> int:
        return max(multiple, int(round(x * scale / multiple)) * multiple)

    return snap(width), snap(height)


class CallTimer:
    """Wall time of one backend call, charged as GPU time to its items:
    gpu_seconds = elapsed x GPUs the actor holds / items in the batch."""

    def __init__(self, context: BackendContext):
        self.num_gpus = float(context.num_gpus)
        self.t0 = time.perf_counter()

    def charge(self, answers: list[Answer]) -> list[Answer]:
        if answers:
            share = (time.perf_counter() - self.t0) * self.num_gpus / len(answers)
            for a in answers:
                a.gpu_seconds = share
        return answers


def error_text(e: BaseException, secrets: list[str] | None = None) -> str:
    """One line naming the exception, keys scrubbed (nhr_ray.redact) before it is cut to 500 chars.
    `secrets`: key values the backend holds that the environment's key variables may not name."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (redact(f"{type(e).__name__}: {msg}", secrets) or "")[:500]


def apply_speedups(pipe, *, fuse_qkv: bool, compile: bool, attention_backend: str | None) -> None:
    """Optional diffusers speed-ups on a pipeline's denoiser (transformer or unet)."""
    net = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    if fuse_qkv and hasattr(net, "fuse_qkv_projections"):
        net.fuse_qkv_projections()
    if attention_backend and hasattr(net, "set_attention_backend"):
        net.set_attention_backend(attention_backend)
    if compile:
        import torch

        net.compile(fullgraph=False, dynamic=False) if hasattr(net, "compile") else torch.compile(net)


def dtype_kwarg(dtype) -> dict:
    """`dtype=` where diffusers/transformers take it, `torch_dtype=` on older releases."""
    import diffusers.utils.deprecation_utils as du

    return {"dtype": dtype} if hasattr(du, "_resolve_dtype") else {"torch_dtype": dtype}
