"""Judge profiles per judging stage: how each judge is asked and how its answer is read."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

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
    ensemble: "EnsembleConfig | None" = Field(
        None,
        description="An ensemble validator: several judges, hosted together in each roles.validator actor, score every "
        "candidate of stages 8 and 11 (and composition.rescore); their scores combine by `combine`. None: the one judge "
        "of roles.validator, with the profiles above. With an ensemble each judge's own profile is used.",
    )

    def for_stage(self, stage: str) -> JudgeProfileConfig:
        """The profile of a judging stage: 'prefilter', 'validation' or 'consistency'."""
        if stage == "consistency":
            return self.consistency or self.validation
        return getattr(self, STAGE_OF_ROLE.get(stage, stage))

    for_role = for_stage  # callers that name the judge by its role ('validator') get the same answer


STAGE_OF_ROLE = {"validator": "validation"}  # the role that answers a judging stage, where the names differ


AXES = ("adherence", "aesthetics")
MAX_CALIBRATION_BYTES = 5_000_000  # calibration.json with its sweep is a few kB


class EnsembleJudge(Strict):
    """One judge of the ensemble validator, hosted in every validator actor beside the others."""

    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$",
        description="This judge's name in the attempts table (`validation_judges`) and the reasons it causes.",
    )
    backend: str | None = Field(None, description="Registered vlm backend; None: roles.validator.backend.")
    options: dict[str, Any] | None = Field(
        None,
        description="The backend's options. With `backend` None: roles.validator.options updated with these (the same "
        "model with this judge's `lora`, say); with a backend of its own: these alone.",
    )
    profile: str = Field("nhr", description="How this judge is asked and read (as judging.validation.profile).")
    prompt_dir: str | None = Field(None, description="As judging.validation.prompt_dir, for this judge.")
    calibration: str | None = Field(
        None,
        description="`nhr-ray calibrate`'s calibration.json for this judge: its per-axis bias (its mean score minus "
        "the humans' mean) and error spread are read from it when the config loads, for combine: calibrated.",
    )
    bias: dict[str, float] | None = Field(None, description="Per axis: this judge's mean minus the humans' (from `calibration`, or by hand).")
    error_sd: dict[str, float] | None = Field(
        None, description="Per axis: the spread of its de-biased error against humans (from `calibration`, or by hand)."
    )

    _known_profile = field_validator("profile")(JudgeProfileConfig._known_profile.__func__)

    @model_validator(mode="before")
    @classmethod
    def _read_calibration(cls, data: Any) -> Any:
        """Fill bias and error_sd from the calibration file. A config saved by a run (manifest.json)
        carries both: its figures stand where the file is gone (another machine), and must match it
        where it is there."""
        if not isinstance(data, dict) or data.get("calibration") is None:
            return data
        given = {k: data.get(k) for k in ("bias", "error_sd") if data.get(k) is not None}
        if given and not Path(str(data["calibration"])).exists():
            return data
        figures = calibration_figures(str(data["calibration"]))
        for k, v in given.items():
            if not isinstance(v, dict) or any(not math.isclose(float(v.get(a, math.nan)), figures[k][a], abs_tol=1e-9) for a in AXES):
                raise ValueError(f"{k} {v} is not what {data['calibration']} says ({figures[k]}): give the file or the "
                                 "figures, not both")  # fmt: skip
        return {**data, **figures}

    @field_validator("bias", "error_sd")
    @classmethod
    def _both_axes(cls, v, info):
        if v is None:
            return v
        if sorted(v) != sorted(AXES):
            raise ValueError(f"needs exactly the axes {list(AXES)}, got {sorted(v)}")
        for a, x in v.items():
            if not math.isfinite(x) or (info.field_name == "error_sd" and x <= 0) or abs(x) > 4:
                raise ValueError(f"{a}: {x} is not a usable figure")
        return v


def calibration_figures(path: str) -> dict[str, dict[str, float]]:
    """{'bias': {axis: x}, 'error_sd': {axis: x}} from a calibration.json written by `nhr-ray calibrate`.
    Reports written before error_sd was recorded give it from the MAE (sd = MAE sqrt(pi / 2), as for a
    normal error)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"calibration {path}: no such file")
    if p.stat().st_size > MAX_CALIBRATION_BYTES:
        raise ValueError(f"calibration {path}: {p.stat().st_size} bytes, not a calibration report (limit {MAX_CALIBRATION_BYTES})")
    try:
        report = json.loads(p.read_text())
        axes = report["axes"]
        out: dict[str, dict[str, float]] = {"bias": {}, "error_sd": {}}
        for a in AXES:
            ax = axes[a]
            bias = float(ax.get("bias", float(ax["mean_validator"]) - float(ax["mean_human"])))
            sd = float(ax["error_sd"]) if "error_sd" in ax else float(ax["mae"]) * math.sqrt(math.pi / 2)
            out["bias"][a], out["error_sd"][a] = bias, sd
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"calibration {path}: not a report of `nhr-ray calibrate` ({type(e).__name__}: {e})") from None
    if int(report.get("n_triplets") or 0) < MIN_CALIBRATION_TRIPLETS:
        raise ValueError(f"calibration {path}: from {report.get('n_triplets')} triplets; weights need at least "
                         f"{MIN_CALIBRATION_TRIPLETS} rated triplets with this judge's scores")  # fmt: skip
    return out


MIN_CALIBRATION_TRIPLETS = 30


class EnsembleConfig(Strict):
    """Several judges score every candidate (stage 8), inverse (stage 11) and rescored composition; their
    scores combine into the one pair of scores the thresholds see, and each judge's are kept in the
    attempts table (`validation_judges`)."""

    judges: list[EnsembleJudge] = Field(..., min_length=2, description="Two or more judges; names unique.")
    combine: Literal["mean", "min", "calibrated"] = Field(
        "mean",
        description="Per axis: mean (the judges' mean), min (the lowest: every judge must clear the bar) or calibrated "
        "(each judge's score less its bias, weighted by 1 / error_sd^2; every judge needs `calibration`).",
    )
    min_judges: int | None = Field(
        None, ge=1,
        description="Judges that must give readable scores for a candidate to be judged (the rest are left out of the "
        "combination, counted in the stage's notes); None: all of them. Fewer: the candidate takes the first missing "
        "judge's reason, prefixed with its name.",
    )

    @model_validator(mode="after")
    def _consistent(self):
        names = [j.name for j in self.judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judge names must be unique: {names}")
        if self.min_judges is not None and self.min_judges > len(self.judges):
            raise ValueError(f"min_judges ({self.min_judges}) is more than the {len(self.judges)} judges")
        if self.combine == "calibrated":
            bare = [j.name for j in self.judges if j.bias is None or j.error_sd is None]
            if bare:
                raise ValueError(f"combine: calibrated needs every judge's `calibration` (or bias and error_sd); "
                                 f"{', '.join(bare)} {'has' if len(bare) == 1 else 'have'} none")  # fmt: skip
        return self


JudgingConfig.model_rebuild()
