"""The method's steps, one section each (SPEC.md stages 1 to 11), in pipeline order."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from nhr_ray.config.base import Strict

# SPEC.md stage 2: the 26 aspect buckets of the released data (w, h), all multiples of 64.
PAPER_BUCKETS: list[tuple[int, int]] = [
    (640, 1600), (640, 1536), (704, 1472), (704, 1408), (768, 1344), (768, 1280), (832, 1216),
    (832, 1152), (896, 1152), (896, 1088), (960, 1088), (960, 1024), (1024, 1024), (1024, 960),
    (1088, 960), (1088, 896), (1152, 896), (1152, 832), (1216, 832), (1280, 768), (1344, 768),
    (1344, 704), (1408, 704), (1472, 704), (1536, 640), (1600, 640),
]  # fmt: skip

class TaskConfig(Strict):
    description: str = Field(
        "Everyday and exotic scenes, each with 1 to 5 clearly visible objects, and edits of mixed types.",
        description="Task description handed to the prompt designer (theme, domain, style, constraints).",
    )
    operation: Literal["mixed", "removal", "addition", "colour_change", "replacement", "style"] = Field(
        "mixed", description="Which prompt variant designs the instructions (prompts/design_<op>.md)."
    )
    num_scenes: int = Field(230, ge=1, description="Scene prompts to design (the paper made 63,292).")
    items_per_request: int = Field(50, ge=1, le=200, description="Scenes asked for per LLM call (paper: 50).")
    max_instructions_per_scene: int = Field(8, ge=1, description="Instructions beyond this are dropped, counted.")
    max_prompt_chars: int = Field(2000, ge=50, description="Longer scene prompts are dropped, counted.")
    max_instruction_chars: int = Field(400, ge=10, description="Longer instructions are dropped, counted.")


class SourcesConfig(Strict):
    kind: Literal["t2i", "images"] = Field(
        "t2i", description="Where source images come from: the T2I model, or real photos (`images`, no design step)."
    )
    images: str | None = Field(
        None,
        description="kind=images: a folder of image files (instructions in its captions.jsonl), a Parquet file, or a "
        "folder of Parquet files (HF-style dataset) with columns image, caption, instructions[, categories].",
    )
    seeds_per_prompt: int = Field(10, ge=1, description="N: seeds rendered per scene prompt (paper: 10).")
    buckets: list[tuple[int, int]] = Field(
        default_factory=lambda: list(PAPER_BUCKETS),
        description="(width, height) buckets, one chosen per image by a seeded draw (paper: 26 buckets).",
    )
    bucket_draw: Literal["paper", "uniform"] = Field(
        "paper",
        description="How an image's bucket is drawn. paper: with each bucket's frequency in NHR-Edit (paper Table 8; "
        "near-square sizes dominate, 1.75:1 or wider is 16.7 %); a bucket not in the paper's list takes the "
        "frequency of the paper bucket nearest in aspect ratio. uniform: every bucket equally often.",
    )
    scale: float = Field(
        1.0, gt=0, le=1, description="Multiply bucket sizes (rounded to 16 px). The simulation uses 1/8."
    )
    batch_size: int = Field(8, ge=1, description="Images per T2I call (batched within one bucket).")
    max_pinned_bytes: int | None = Field(
        8 * 2**30, ge=1,
        description="Source images kept in the object store (on the driver's node) until all their edit jobs are done, "
        "plus the batches being made: no new batch of sources starts while they would pass this many bytes "
        "(runtime/admission.py). Generation resumes as jobs finish. Uniform draws are then uniform over the sources "
        "admitted so far. None: no limit.",
    )
    max_pending_jobs: int | None = Field(
        100_000, ge=1,
        description="No new batch of sources starts while the edit jobs not yet drawn (plus those of batches being made) "
        "would pass this. None: no limit.",
    )
    max_photo_bytes: int = Field(
        50_000_000, ge=1,
        description="kind=images: a photo file (or Parquet image value) larger than this is refused as file_too_large, "
        "from its size, before it is read.",
    )

    @model_validator(mode="after")
    def _images_path(self):
        if self.kind == "images" and not self.images:
            raise ValueError("sources.kind=images needs sources.images (a folder or Parquet file of photos)")
        return self

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v):
        if not v:
            raise ValueError("at least one bucket")
        for w, h in v:
            if w < 16 or h < 16 or max(w, h) / min(w, h) > 6.0:
                raise ValueError(f"bucket {w}x{h}: sides must be >= 16 and the aspect within 1:6..6:1")
        return v


class GateConfig(Strict):
    enabled: bool = Field(True, description="Stage 3: the small VLM's yes/no plausibility gate.")
    batch_size: int = Field(16, ge=1)


class EditConfig(Strict):
    attempts_per_instruction: int = Field(5, ge=1, description="M: editor seeds per (image, instruction).")
    batch_size: int = Field(8, ge=1, description="Attempts per editor call.")


class PrefilterConfig(Strict):
    enabled: bool = Field(True, description="Stage 6: the big open VLM's soft pre-filter.")
    min_adherence: float = Field(
        3.5, ge=1, le=5,
        description="Scores below drop the edit. Ours: the paper gives no number for its coarse pre-filter; a bar "
        "well below the validator's 4.7 keeps the good edits a judge as noisy as Qwen2.5-VL-72B under-scores (Table 1: "
        "MAE 0.96). With 3.5 the simulated run's pre-filter drops about the paper's 57 % (Table 3). Measured on the "
        "simulation: benchmarks/prefilter_threshold.py, README 'Paper defaults'.",
    )  # fmt: skip
    min_aesthetics: float = Field(3.0, ge=1, le=5, description="As min_adherence, lower still: the 72B's aesthetics are its noisiest axis (Table 1: rho 0.361). Ours; the paper gives no number.")
    check_unwanted_change: bool = Field(True, description="Ask 'only the asked-for change, nothing else?'.")
    check_aesthetics: bool = Field(True, description="Ask 'is the edited image pleasing?'.")


class LowLevelConfig(Strict):
    enabled: bool = True
    pixel_threshold: int = Field(40, ge=0, le=255, description="A pixel changed if max |Ie - I0| over channels > this.")
    min_largest_component_share: float = Field(
        0.005, ge=0, le=1, description="Drop if the largest 4-connected changed component holds less than this share of changed pixels."
    )
    connectivity: Literal[4, 8] = 4
    on_no_change: Literal["drop"] = Field("drop", description="No changed pixel: the editor did nothing (silent failure).")
    on_size_mismatch: Literal["drop"] = Field("drop", description="Ie of another size than I0: no pixel correspondence to check.")


class ValidationConfig(Strict):
    min_adherence: float = Field(4.7, ge=1, le=5, description="Stage 8: keep adherence >= this (paper: 4.7).")
    min_aesthetics: float = Field(4.7, ge=1, le=5, description="Stage 8: keep aesthetics >= this (paper: 4.7).")
    batch_size: int = Field(8, ge=1)


class InversionConfig(Strict):
    enabled: bool = True
    forbidden_words: list[str] = Field(
        ["revert", "undo", "restore"],
        description="Words an inverse may not use in any form (reverted, undoes, ...). Beyond them, wording that refers "
        "to undoing the earlier edit is always dropped ('put it back', 'red again', 'its original colour'), while "
        "ordinary 'back', 'again', 'original' pass ('the lamp at the back of the room').",
    )
    max_chars: int = Field(300, ge=10)
    batch_size: int = Field(16, ge=1)


class CompositionConfig(Strict):
    enabled: bool = True
    max_per_source: int | None = Field(
        None, ge=0, description="Cap on composed triplets per source image (None: every ordered pair of kept edits)."
    )
    rescore: bool = Field(
        False,
        description="Send composed triplets through the validator (its profile and validation thresholds, on the "
        "validator actors of the final stages) and keep only those that pass, their scores then judged. Off (paper): "
        "a composition carries the lower of its parents' scores, marked score_source='inherited'.",
    )


class ConsistencyConfig(Strict):
    enabled: bool = Field(True, description="Stage 11: re-score inverse triplets; a failure drops it, its forward twin and compositions built on it.")
    min_adherence: float = Field(
        4.7, ge=1, le=5,
        description="T_inv for adherence: the validator's own bar (paper: 4.7), as an inverse is the same kind of "
        "triplet judged by the same validator; with it the run's consistency row stays near the paper's -9.89 % "
        "(Table 3). Measured (README 'Paper defaults'): 4.5 drops half the share of inverses (5.2 % vs 10.1 %) and "
        "keeps 13 % more final triplets at 0.3 points less true precision on the simulation (one seed).",
    )  # fmt: skip
    min_aesthetics: float = Field(4.7, ge=1, le=5, description="T_inv for aesthetics (as min_adherence).")
