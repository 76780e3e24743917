"""Judge profiles per judging stage: how each judge is asked and how its answer is read."""

from __future__ import annotations

from pydantic import Field, field_validator

from nhr_ray.config.base import Strict
from nhr_ray.judges.profiles import profile_class


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
        try:
            profile_class(v)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        return v


class JudgingConfig(Strict):
    """Keyed by judging stage: `prefilter` (stage 6), `validation` (stage 8), `consistency` (stage 11)."""

    prefilter: JudgeProfileConfig = Field(default_factory=JudgeProfileConfig, description="Stage 6's score question.")
    validation: JudgeProfileConfig = Field(default_factory=JudgeProfileConfig, description="Stage 8, the hard validator.")
    consistency: JudgeProfileConfig | None = Field(
        None, description="Stage 11 (it runs on the validator's model); None: the validation stage's profile."
    )

    def for_stage(self, stage: str) -> JudgeProfileConfig:
        """The profile of a judging stage: 'prefilter', 'validation' or 'consistency'."""
        if stage == "consistency":
            return self.consistency or self.validation
        return getattr(self, STAGE_OF_ROLE.get(stage, stage))

    for_role = for_stage  # callers that name the judge by its role ('validator') get the same answer


STAGE_OF_ROLE = {"validator": "validation"}  # the role that answers a judging stage, where the names differ
