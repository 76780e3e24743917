"""The SIMULATION backends' options, apart from the backends (nhr_ray/backends/sim) so that a
config's `roles.<role>.options` are checked without importing the simulation world or OpenCV."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nhr_ray.roles import BackendOptions


class SimTextOptions(BackendOptions):
    pass


class SimT2IOptions(BackendOptions):
    steps: int = 4


class SimEditorOptions(BackendOptions):
    min_steps: int = 18
    max_steps: int = 28


class SimJudgeOptions(BackendOptions):
    errs_as: Literal["validator", "prefilter"] | None = Field(
        None,
        description="Whose fitted error model a score judge follows (backends/sim/quality.py): 'validator' (the paper's "
        "tuned validator, Tables 1 and 7) or 'prefilter' (Qwen2.5-VL-72B); None: its role's.",
    )
    gpu_seconds: float | None = Field(
        None, ge=0,
        description="GPU-seconds one question costs; None: its role's (the validator 0: a hosted model, as the paper's "
        "tuned Gemini). A Qwen2.5-VL-7B-size judge served on a GPU: 0.739 (SPEC.md, 2 images + 20 tokens).",
    )
