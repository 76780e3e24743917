"""Typed run configuration: every field documented, paper defaults, validated before any work.

A config is YAML. `load_config(path, preset=..., overrides=[...])` merges: the packaged preset
(default: `default`, the simulation world), then the user's file, then `--set dotted.key=value`
overrides; the result is validated once. Unknown and ill-typed keys are errors that name the key.
"""

from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nhr_ray.roles import ROLE_KINDS

# SPEC.md stage 2: the 26 aspect buckets of the released data (w, h), all multiples of 64.
PAPER_BUCKETS: list[tuple[int, int]] = [
    (640, 1600), (640, 1536), (704, 1472), (704, 1408), (768, 1344), (768, 1280), (832, 1216),
    (832, 1152), (896, 1152), (896, 1088), (960, 1088), (960, 1024), (1024, 1024), (1024, 960),
    (1088, 960), (1088, 896), (1152, 896), (1152, 832), (1216, 832), (1280, 768), (1344, 768),
    (1344, 704), (1408, 704), (1472, 704), (1536, 640), (1600, 640),
]  # fmt: skip

CATEGORIES = ["removal", "addition", "colour_change", "replacement", "style"]
KNOWN_CATEGORIES = (*CATEGORIES, "other")  # what an instruction can be labelled (design.classify_instruction)


def check_categories(names) -> None:
    """A map keyed by instruction category may name only known categories."""
    bad = sorted(set(names) - set(CATEGORIES))
    if bad:
        raise ValueError(f"unknown categories {bad}; known: {CATEGORIES}")


class ConfigError(ValueError):
    """A config that must not run. The message names the offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
        4.0, ge=1, le=5,
        description="Scores below drop the edit. Ours: the paper gives no number for its coarse pre-filter; a bar "
        "below the validator's 4.7 keeps edits the 72B under-scores. Measured on the simulation "
        "(benchmarks/prefilter_threshold.py, README 'Paper defaults'): 4.7 judges 0.53x the candidates and yields "
        "0.80x the triplets at the same GPU-hours.",
    )  # fmt: skip
    min_aesthetics: float = Field(4.0, ge=1, le=5, description="As min_adherence (ours; the paper gives no number).")
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


class ConsistencyConfig(Strict):
    enabled: bool = Field(True, description="Stage 11: re-score inverse triplets; a failure drops it, its forward twin and compositions built on it.")
    min_adherence: float = Field(
        4.7, ge=1, le=5,
        description="T_inv for adherence: the validator's own bar (paper: 4.7), as an inverse is the same kind of "
        "triplet judged by the same validator. Measured (README 'Paper defaults'): 4.5 drops the same share of "
        "inverses on the simulation (11.5 % vs 11.4 %), so nothing argues for a lower bar.",
    )  # fmt: skip
    min_aesthetics: float = Field(4.7, ge=1, le=5, description="T_inv for aesthetics (as min_adherence).")


class JudgeProfileConfig(Strict):
    profile: str = Field(
        "nhr",
        description="How this judge is asked to score an edit and how its answer is read (nhr_ray/judges): 'nhr' (our "
        "prompt, JSON adherence/aesthetics; the paper's keys are read too), 'nhr-paper-keys' (asks for the paper's "
        "InstructionAdherence/ImageAesthetic), 'imgedit-judge' (ImgEdit-Judge), 'editscore' (EditScore).",
    )
    prompt_dir: str | None = Field(
        None, description="Folder to read this profile's prompt files from instead of the packaged prompts/ (same file names)."
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        from nhr_ray.judges.profiles import profile_class

        try:
            profile_class(v)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        return v


class JudgingConfig(Strict):
    prefilter: JudgeProfileConfig = Field(default_factory=JudgeProfileConfig, description="Stage 6's score question.")
    validator: JudgeProfileConfig = Field(default_factory=JudgeProfileConfig, description="Stage 8, the hard validator.")
    consistency: JudgeProfileConfig | None = Field(
        None, description="Stage 11 (it runs on the validator's model); None: the validator's profile."
    )

    def for_role(self, role: str) -> JudgeProfileConfig:
        if role == "consistency":
            return self.consistency or self.validator
        return getattr(self, role)


class SchedulerConfig(Strict):
    budget_gpu_hours: float | None = Field(
        19.4, description="Stop issuing edit jobs once busy GPU-hours (spent + in-flight estimates) reach this. None: no budget."
    )
    unit: Literal["job", "pair"] = Field(
        "pair",
        description="'job': draw single attempts uniformly from the N x k x M queue; 'pair': draw (image, instruction) pairs uniformly and issue all M attempts of each.",
    )
    batch_size: int = Field(8, ge=1, description="Jobs handed out per scheduler call.")
    budget_clock: Literal["reserved", "busy"] = Field(
        "reserved",
        description="Which GPU-seconds the budget counts: 'reserved' = GPUs held by the pipeline's actors x wall time "
        "(what a cluster bills); 'busy' = what each call took x its GPUs. The simulation world's costs are virtual, so "
        "use 'busy' there (the default preset does). Both clocks are always reported.",
    )
    policy: str = Field(
        "uniform",
        description="Draw policy (nhr_ray/scheduler/policies.py): uniform (the paper's), per_category_m, "
        "until_first_success, weakness, adaptive.",
    )
    policy_options: dict[str, Any] = Field(default_factory=dict, description="The policy's own options (its Options model).")
    checkpoint_every_s: float = Field(60.0, gt=0, description="Seconds between atomic scheduler checkpoints in the output folder.")

    @field_validator("budget_gpu_hours")
    @classmethod
    def _positive(cls, v):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError("must be a finite number > 0 (or null for no budget)")
        return v

    @model_validator(mode="after")
    def _policy_known(self):
        from nhr_ray.scheduler.policies import POLICIES, check_policy

        try:
            check_policy(self.policy, self.unit)
        except ValueError as e:
            raise ValueError(f"policy: {e}") from None
        try:
            POLICIES[self.policy].Options.model_validate(self.policy_options)
        except ValidationError as e:
            raise ValueError(f"policy_options.{_first_error(e)}") from None
        return self


class RoleConfig(Strict):
    backend: str = Field("sim", description="Registered backend name (`nhr-ray backends` lists them).")
    actors: int = Field(1, ge=1, description="Actors in this role's pool.")
    num_gpus: float = Field(1.0, ge=0, description="GPUs each actor holds (fractions share a GPU).")
    num_cpus: float = Field(0.25, ge=0, description="CPUs each actor holds.")
    max_in_flight: int = Field(2, ge=1, description="Batches queued per actor (the next is ready before the current ends).")
    max_actors: int | None = Field(
        None, ge=1,
        description="With ray.elastic: the pool may grow to this many actors while its queue is backed up (and shrinks "
        "back to 1 when idle). None: the pool stays at `actors`.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The backend's own options.")

    @model_validator(mode="after")
    def _max_not_below_start(self):
        if self.max_actors is not None and self.max_actors < self.actors:
            raise ValueError(f"max_actors ({self.max_actors}) is below actors ({self.actors})")
        return self


# each role's own defaults: a config or --set that names some fields of a role keeps the rest of them
# (`--set roles.prefilter.actors=2` keeps the pre-filter's 4 GPUs per actor)
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "designer": {"num_gpus": 0}, "t2i": {"num_gpus": 1}, "gate": {"num_gpus": 1}, "editor": {"num_gpus": 1, "actors": 2},
    "prefilter": {"num_gpus": 4}, "validator": {"num_gpus": 0}, "inverter": {"num_gpus": 0},
}  # fmt: skip


def _role(name: str):
    return Field(default_factory=lambda: RoleConfig(**ROLE_DEFAULTS[name]))


class RolesConfig(Strict):
    designer: RoleConfig = _role("designer")
    t2i: RoleConfig = _role("t2i")
    gate: RoleConfig = _role("gate")
    editor: RoleConfig = _role("editor")
    prefilter: RoleConfig = _role("prefilter")
    validator: RoleConfig = _role("validator")
    inverter: RoleConfig = _role("inverter")

    @model_validator(mode="before")
    @classmethod
    def _keep_role_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: {**ROLE_DEFAULTS[k], **v} if k in ROLE_DEFAULTS and isinstance(v, dict) else v for k, v in data.items()}
        return data


class RayConfig(Strict):
    address: str | None = Field(None, description="Cluster to join; None: RAY_ADDRESS, else a private local cluster.")
    local_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster (default: all).")
    local_num_gpus: int = Field(8, ge=0, description="GPUs the local cluster declares (fake ones on a laptop).")
    include_dashboard: bool = Field(False, description="Start the dashboard with a local cluster (bound to 127.0.0.1).")
    cpu_workers: int = Field(1, ge=1, description="CPU actors for the low-level check.")
    autosize: bool = Field(
        False,
        description="Size the GPU role pools (t2i, gate, editor, prefilter) from cost per edit attempt to fill the cluster's GPUs, "
        "re-balance them every rebalance_every_s from measured costs and pass rates, and let actors go at the tail; "
        "roles.<r>.actors then only counts as a minimum of 1. Off: the configured actor counts, fixed.",
    )
    rebalance_every_s: float = Field(10.0, gt=0, description="With autosize: seconds between re-balancing decisions.")
    rebalance_min_gain: float = Field(
        0.05, ge=0, description="With autosize: re-balance only when the new plan's throughput is this much (relative) higher."
    )
    autoscaling_max_gpus: int | None = Field(
        None, ge=1,
        description="On an autoscaling cluster: the GPUs it can grow to. The pools' GPUs are then requested from the "
        "autoscaler at start (and released at the end) and checked against this instead of what is up now.",
    )
    max_starting_actors: int | None = Field(
        None, ge=1,
        description="Actors loading their model at once, across the cluster (None: every actor at once). Where loads "
        "contend (weights on shared storage, or simulated nodes sharing a few cores) they then finish one after another "
        "instead of all together at the end, so work begins while the rest load: sources first, then editors, judges and "
        "the CPU check interleaved by their counts. A waiting actor's GPUs count as reserved all the same.",
    )
    elastic: bool = Field(
        False,
        description="Demand-driven pools: a role whose queue stays backed up for elastic_sustain_s grows (doubling, up to "
        "roles.<r>.max_actors) and one whose actors sit idle for elastic_idle_s shrinks (to 1), and the pools' resources "
        "are requested from the autoscaler (ray.autoscaler.sdk.request_resources) at every change, so an autoscaling "
        "cluster adds nodes for a backed-up queue and removes them when the pools shrink. Not with autosize.",
    )
    elastic_grow_at: float = Field(
        2.0, gt=0, description="With elastic: batches waiting per live actor of a role that count as a backed-up queue."
    )
    elastic_sustain_s: float = Field(10.0, ge=0, description="With elastic: seconds a queue must stay backed up before its pool grows.")
    elastic_idle_s: float = Field(30.0, ge=0, description="With elastic: seconds an actor with nothing queued waits before it is let go.")

    @model_validator(mode="after")
    def _one_sizing_mode(self):
        if self.elastic and self.autosize:
            raise ValueError("elastic and autosize both size the pools: choose one (autosize fills a fixed cluster's "
                             "GPUs from measured costs; elastic follows queue depth on an autoscaling cluster)")
        return self


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
    pair_concentration: float = Field(0.33, gt=0, description="a+b of the per-pair Beta law of true-clean probability (lower: more clustered).")
    pair_success_mean: float = Field(0.20, gt=0, lt=1, description="Mean true-clean probability of a feasible pair.")
    category_difficulty: dict[str, float] = Field(
        default_factory=lambda: {"removal": 1.15, "addition": 1.0, "colour_change": 1.2, "replacement": 0.9, "style": 0.7},
        description="Multiplier on pair_success_mean per category.",
    )

    @field_validator("category_difficulty")
    @classmethod
    def _known(cls, v):
        check_categories(v)
        return v


# ----- hosted APIs (OpenAI, Gemini) -------------------------------------------------------------


class ApiCallPolicy(Strict):
    """How one provider's calls are timed, retried and rate-limited (shared by its backends)."""

    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout; a request past it is a 'timeout' try.")
    max_retries: int = Field(
        5, ge=0, description="Retries after the first try on 429, 5xx, timeouts and connection errors (the SDK's own retries are off)."
    )
    backoff_initial_s: float = Field(1.0, ge=0, description="First backoff; doubles per retry, full jitter, at least Retry-After.")
    backoff_max_s: float = Field(60.0, ge=0, description="Cap on one backoff sleep (a longer Retry-After is cut to this).")
    concurrency: int = Field(8, ge=1, description="Requests in flight per actor (a thread pool of this many workers).")
    requests_per_minute: float | None = Field(
        None, gt=0, description="Cluster-wide request rate for this provider and model, shared by every actor (None: unlimited)."
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="Cluster-wide token rate (input + expected output, settled with the real usage). None: unlimited."
    )
    burst_s: float = Field(1.0, gt=0, description="Bucket depth in seconds of the rate: the largest burst after an idle spell.")


class OpenAIConfig(ApiCallPolicy):
    base_url: str | None = Field(None, description="API root, e.g. http://127.0.0.1:8000/v1 (None: the SDK default, api.openai.com).")
    model: str = Field("o3", description="Chat Completions model (paper: o3). A role's options.model overrides it.")
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        "medium", description="Sent as reasoning_effort for reasoning models (None: not sent)."
    )


class GeminiConfig(ApiCallPolicy):
    base_url: str | None = Field(None, description="API root, e.g. http://127.0.0.1:8001 (None: the SDK default for the chosen API).")
    model: str = Field(
        "gemini-2.5-flash",
        description="Model id, any string: a base model, tunedModels/<id>, or a Vertex endpoint path for a tuned validator. A role's options.model overrides it.",
    )
    vertexai: bool = Field(False, description="Use Vertex AI (project, location, ADC credentials) instead of the Gemini Developer API.")
    project: str | None = Field(None, description="Vertex AI project (None: GOOGLE_CLOUD_PROJECT).")
    location: str | None = Field(None, description="Vertex AI location, e.g. us-central1 (None: GOOGLE_CLOUD_LOCATION).")
    api_version: str = Field(
        "v1beta", description="API version in the URL path (/v1beta/models/...). With vertexai and this key unset: v1."
    )


class ModelPrice(Strict):
    input_per_m: float = Field(ge=0, description="USD per 1M input tokens (images count as the tokens the API reports).")
    output_per_m: float = Field(ge=0, description="USD per 1M output tokens, reasoning/thinking tokens included.")


def _default_prices() -> dict[str, ModelPrice]:
    # List prices per 1M tokens (USD) as published by the providers; edit them for your contract.
    return {
        "o3": ModelPrice(input_per_m=2.0, output_per_m=8.0),
        "o4-mini": ModelPrice(input_per_m=1.1, output_per_m=4.4),
        "gpt-4.1": ModelPrice(input_per_m=2.0, output_per_m=8.0),
        "gemini-2.5-flash": ModelPrice(input_per_m=0.30, output_per_m=2.50),
        "gemini-2.5-pro": ModelPrice(input_per_m=1.25, output_per_m=10.0),
        "gemini-2.0-flash": ModelPrice(input_per_m=0.10, output_per_m=0.40),
    }


class ApiConfig(Strict):
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig, description="OpenAI (key from OPENAI_API_KEY).")
    gemini: GeminiConfig = Field(
        default_factory=GeminiConfig, description="Gemini (key from GEMINI_API_KEY or GOOGLE_API_KEY; Vertex AI uses ADC)."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=_default_prices,
        description="USD per 1M tokens by model id; a model without an exact entry takes the longest key it starts with (a tuned 'gemini-2.0-flash-...' is priced as gemini-2.0-flash).",
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="Stop issuing API calls once the run's estimated spend (all providers, all actors) reaches this; later items fail with 'cost_budget_exhausted'."
    )

    def price(self, model: str) -> ModelPrice | None:
        if model in self.prices:
            return self.prices[model]
        tail = model.rsplit("/", 1)[-1]
        keys = [k for k in self.prices if model.startswith(k) or tail.startswith(k)]
        return self.prices[max(keys, key=len)] if keys else None


class RunConfig(Strict):
    seed: int = Field(
        0, ge=0, le=2**63 - 1,
        description="Run seed: every outcome is a function of it and the item's id (0 to 2^63-1: numpy's generators "
        "take no negative seed, and the OpenAI API's seed is a 64-bit integer).",
    )
    task: TaskConfig = Field(default_factory=TaskConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    edit: EditConfig = Field(default_factory=EditConfig)
    prefilter: PrefilterConfig = Field(default_factory=PrefilterConfig)
    lowlevel: LowLevelConfig = Field(default_factory=LowLevelConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    inversion: InversionConfig = Field(default_factory=InversionConfig)
    composition: CompositionConfig = Field(default_factory=CompositionConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    answers: AnswersConfig = Field(default_factory=AnswersConfig, description="Length bounds on model text before parsing.")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    api: ApiConfig = Field(default_factory=ApiConfig, description="Hosted model APIs: endpoints, retries, rate limits, prices, budget.")
    judging: JudgingConfig = Field(
        default_factory=JudgingConfig, description="Judge profiles (scoring prompt, answer format, scale) per judging role."
    )

    @model_validator(mode="after")
    def _roles_exist(self):
        from nhr_ray.roles import BackendUnavailable, backend_class

        for role in ROLE_KINDS:
            rc: RoleConfig = getattr(self.roles, role)
            try:
                cls = backend_class(role, rc.backend)
            except (KeyError, BackendUnavailable) as e:
                raise ValueError(f"roles.{role}.backend: {e}") from None
            try:
                cls.Options.model_validate(rc.options)
            except ValidationError as e:
                raise ValueError(f"roles.{role}.options: {_first_error(e)}") from None
        return self

    @model_validator(mode="after")
    def _profiles_fit_backends(self):
        from nhr_ray.judges.profiles import profile_class

        for stage, role in (("prefilter", "prefilter"), ("validator", "validator"), ("consistency", "validator")):
            pc = self.judging.for_role(stage)
            if getattr(self.roles, role).backend == "sim" and not profile_class(pc.profile).sim_speaks_it:
                raise ValueError(f"judging.{stage}.profile: {pc.profile!r} needs a real judge model; the simulated "
                                 f"roles.{role} answers only in the 'nhr' formats")  # fmt: skip
        return self

    def role(self, name: str) -> RoleConfig:
        return getattr(self.roles, name)


# ----- loading ---------------------------------------------------------------------------------


def presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("nhr_ray.presets").iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a mapping, got {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    if name not in presets():
        raise ConfigError(f"unknown preset {name!r}; known: {presets()}")
    text = resources.files("nhr_ray.presets").joinpath(f"{name}.yaml").read_text()
    data = _read_yaml(text, f"preset {name}")
    base = data.pop("extends", None)
    return deep_merge(preset_dict(base), data) if base else data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """`a.b.c=value`; the value is parsed as a YAML scalar or flow collection."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def validate_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError("invalid config: " + "; ".join(msgs)) from None


def load_config(
    path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None
) -> RunConfig:
    data = preset_dict(preset or "default")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        user = _read_yaml(p.read_text(), str(p))
        base = user.pop("extends", None)
        if base:
            data = preset_dict(base)
        data = deep_merge(data, user)
    for o in overrides or []:
        apply_override(data, o)
    return validate_config(data)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
