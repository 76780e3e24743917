"""Typed run configuration: every field documented, paper defaults, validated before any work.

A config is YAML. `load_config(path, preset=..., overrides=[...])` merges: the packaged preset
(default: `default`, the simulation world), then the user's file, then `--set dotted.key=value`
overrides; the result is validated once. Unknown and ill-typed keys are errors that name the key.
Loading a config imports no backend, no OpenCV and no Ray.

One module per group of sections:

    stages.py     task, sources, gate, edit, prefilter, lowlevel, validation, inversion, composition, consistency
    judging.py    judge profiles per judging stage
    scheduler.py  budget, draw unit and policy
    cluster.py    roles (one pool per model role) and ray
    output.py     output, answers, models, sim
    api.py        hosted APIs
    run.py        RunConfig, the whole
    load.py       presets, files, overrides; renames.py: old spellings, accepted with a warning
"""

from nhr_ray.categories import CATEGORIES, KNOWN_CATEGORIES, check_categories
from nhr_ray.config.api import ApiCallPolicy, ApiConfig, GeminiConfig, ModelPrice, OpenAIConfig
from nhr_ray.config.base import ConfigError, Strict
from nhr_ray.config.cluster import ROLE_DEFAULTS, RayConfig, RoleConfig, RolesConfig
from nhr_ray.config.judging import JudgeProfileConfig, JudgingConfig
from nhr_ray.config.load import apply_override, deep_merge, dump_config, load_config, preset_dict, presets, validate_config
from nhr_ray.config.output import AnswersConfig, ModelsConfig, OutputConfig, SimConfig
from nhr_ray.config.renames import RENAMED, ConfigDeprecationWarning
from nhr_ray.config.run import RunConfig
from nhr_ray.config.scheduler import SchedulerConfig
from nhr_ray.config.stages import (
    PAPER_BUCKETS,
    CompositionConfig,
    ConsistencyConfig,
    EditConfig,
    GateConfig,
    InversionConfig,
    LowLevelConfig,
    PrefilterConfig,
    SourcesConfig,
    TaskConfig,
    ValidationConfig,
)

__all__ = [
    "CATEGORIES", "KNOWN_CATEGORIES", "PAPER_BUCKETS", "RENAMED", "ROLE_DEFAULTS", "AnswersConfig", "ApiCallPolicy",
    "ApiConfig", "CompositionConfig", "ConfigDeprecationWarning", "ConfigError", "ConsistencyConfig", "EditConfig",
    "GateConfig", "GeminiConfig", "InversionConfig", "JudgeProfileConfig", "JudgingConfig", "LowLevelConfig",
    "ModelPrice", "ModelsConfig", "OpenAIConfig", "OutputConfig", "PrefilterConfig", "RayConfig", "RoleConfig",
    "RolesConfig", "RunConfig", "SchedulerConfig", "SimConfig", "SourcesConfig", "Strict", "TaskConfig",
    "ValidationConfig", "apply_override", "check_categories", "deep_merge", "dump_config", "load_config",
    "preset_dict", "presets", "validate_config",
]  # fmt: skip
