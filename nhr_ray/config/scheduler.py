"""The edit-job scheduler: budget, draw unit and policy, checkpoints."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from nhr_ray.config.base import Strict, first_error
from nhr_ray.scheduler.policies import POLICIES, check_policy

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
        try:
            check_policy(self.policy, self.unit)
        except ValueError as e:
            raise ValueError(f"policy: {e}") from None
        try:
            POLICIES[self.policy].Options.model_validate(self.policy_options)
        except ValidationError as e:
            raise ValueError(f"policy_options.{first_error(e)}") from None
        return self
