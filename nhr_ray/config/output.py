"""What the run writes, bounds on model text, model folders, and the simulation world."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from nhr_ray.categories import check_categories
from nhr_ray.config.base import Strict

class OutputConfig(Strict):
    image_format: Literal["png", "webp"] = Field("png", description="Encoding of images in Parquet (webp is lossless).")
    shard_rows: int = Field(1000, ge=1, description="Rows per Parquet shard.")
    attempt_images: Literal["none", "validated", "all"] = Field(
        "validated", description="Which attempts keep their edited image in attempts-*.parquet (needed for DPO/KTO export)."
    )
    max_image_pixels: int = Field(
        64_000_000, ge=1, le=178_956_970,
        description="Refuse to decode images larger than this (checked from the header, before any pixel is decoded). "
        "At most Pillow's own hard limit (2 x its MAX_IMAGE_PIXELS), which stays on for the whole process.",
    )
    progress: bool = Field(True, description="Live progress display on the terminal.")


class AnswersConfig(Strict):
    """Bounds on model text before it is parsed (nhr_ray/parsing.py): an answer past them is a
    counted `answer_too_long` rejection, never parsed, and its raw text is kept cut to the bound."""

    max_chars: int = Field(
        20_000, ge=100, description="Judge (gate, pre-filter, validator) and inverter answers longer than this are not parsed."
    )
    max_design_chars: int = Field(
        1_000_000, ge=1_000,
        description="Designer answers longer than this are not parsed (one answer holds task.items_per_request scenes: "
        "50 at the longest prompt and instructions allowed are about 260,000 characters).",
    )


class ModelsConfig(Strict):
    root: str | None = Field(
        None, description="Folder that relative `model` options of real backends resolve under (hub ids still work)."
    )


class SimConfig(Strict):
    """The simulation world: every knob of its statistics. See nhr_ray/backends/sim/world.py."""

    malformed_rate: float = Field(0.01, ge=0, le=1, description="Share of judge and LLM answers that are malformed.")
    realtime_scale: float = Field(0.0, ge=0, description="Sleep virtual cost x this per call (0: as fast as possible).")
    gpu_sharing: Literal["slice", "time_shared"] = Field(
        "slice",
        description="Real-time mode, actors on a fraction of a GPU: 'slice' runs each at its fraction's speed, always; "
        "'time_shared' runs the actors placed on one GPU as the GPU time-slices between processes: each call progresses at "
        "1/k of the GPU's speed while k calls are running on it, at full speed alone (one GPU never does more than one "
        "GPU-second per second either way).",
    )
    time_share_efficiency: float = Field(
        1.0, gt=0, le=1,
        description="With gpu_sharing 'time_shared': the share of a GPU's speed that calls sharing it get together "
        "(1: switching between processes is free; 0.9: a tenth is lost while two or more calls share the GPU).",
    )
    missing_object_rate: float = Field(0.18, ge=0, le=1, description="Share of rendered objects the T2I model fails to draw.")
    implausible_rate: float = Field(0.40, ge=0, le=1, description="Share of images with a plausibility flaw.")
    pair_concentration: float = Field(0.12, gt=0, description="a+b of the per-pair Beta law of true-clean probability (lower: more clustered).")
    pair_success_mean: float = Field(0.85, gt=0, lt=1, description="Mean true-clean probability of a feasible pair.")
    category_difficulty: dict[str, float] = Field(
        default_factory=lambda: {"removal": 1.15, "addition": 1.0, "colour_change": 1.2, "replacement": 0.9, "style": 0.7},
        description="Multiplier on pair_success_mean per category.",
    )
    judge_error_correlation: float = Field(
        0.1, ge=0, le=1,
        description="Correlation of two simulated judges' score errors on one candidate (a shared per-candidate "
        "ambiguity; backends/sim/quality.py). One judge's own figures do not depend on it.",
    )

    @field_validator("category_difficulty")
    @classmethod
    def _known(cls, v):
        check_categories(v)
        return v
