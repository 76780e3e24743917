"""The pipeline, described once: every stage of SPEC.md in order, with what the rest of the code needs
to know of it. Role lists, the attempt chain, funnel rows and labels, progress columns, pool layout
and the dataset card's roles are all read from here; adding a stage is one class plus one line.

Import-light on purpose: stage classes are named by "module:Class" and imported only when a pool is
built (`StageSpec.load`), so reading the table imports no backend, no model and no Ray.

Columns:
  name         the stage's own name: its Tally, its verdicts' `stage`, its metrics label
  stage        "module:Class" of the plain-code stage (None: done by the driver in finalize)
  role         the model role whose backend it calls (roles.<role>); "cpu" for CPU actors; None: driver
  config       the config section with its settings (today's spelling)
  funnel_row   its row in the paper's Table 3 (None: not a row of that table)
  paper_pct    the paper's change % for that row (SPEC.md Table 3, 63,292 prompts)
  placement    "gpu" (a model role's pool; its num_gpus may be 0 for a hosted API), "cpu" (CPU
               actors) or "driver" (in the driver process, in finalize)
  phase        "stream" (stages 1-8, in the mining loop) or "final" (8b-11, after it)
  attempt      True for the stages of an edit attempt's chain (editor -> ... -> validator): each
               leaves one verdict on the attempt and gets outcome/reason columns in the attempts table
  sizing       "planned" (autosize follows its share of the funnel), "fixed" (configured count) or None
  model        how the funnel names its model when the stage has no model role
  kind         the interface its role's backends implement (roles.py): text, t2i, vlm or editor
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageSpec:
    name: str
    stage: str | None
    role: str | None
    config: str | None
    funnel_row: str | None
    paper_pct: float | None = None
    placement: str = "gpu"
    phase: str = "stream"
    attempt: bool = False
    sizing: str | None = None
    model: str = ""
    variants: dict[str, str] = field(default_factory=dict)  # sources.kind -> "module:Class" in its place
    kind: str | None = None

    def load(self, cfg=None) -> type:
        """The stage class (the variant for the run's sources.kind where it has one)."""
        path = self.variants.get(cfg.sources.kind, self.stage) if cfg is not None else self.stage
        module, _, cls = path.partition(":")
        return getattr(importlib.import_module(module), cls)


STAGES: tuple[StageSpec, ...] = (
    StageSpec("design", "nhr_ray.stages.design:DesignStage", "designer", "task", None, sizing="fixed", kind="text"),
    StageSpec("sources", "nhr_ray.stages.sources:SourceStage", "t2i", "sources", "source images", None,
              sizing="planned", variants={"images": "nhr_ray.stages.photos:PhotoSourceStage"}, kind="t2i"),
    StageSpec("gate", "nhr_ray.stages.gate:GateStage", "gate", "gate", "plausibility gate", -56.00, sizing="planned",
              kind="vlm"),
    StageSpec("edit", "nhr_ray.stages.edit:EditStage", "editor", "edit", "edits", 495.90, attempt=True, sizing="planned",
              kind="editor"),
    StageSpec("prefilter", "nhr_ray.stages.prefilter:PrefilterStage", "prefilter", "prefilter", "soft pre-filter", -57.00,
              attempt=True, sizing="planned", kind="vlm"),
    StageSpec("lowlevel", "nhr_ray.stages.lowlevel:LowLevelStage", "cpu", "lowlevel", "low-level check", -3.00,
              placement="cpu", attempt=True, model="connected components"),
    StageSpec("validation", "nhr_ray.stages.validation:ValidationStage", "validator", "validation", "hard validation", -63.21,
              attempt=True, sizing="fixed", kind="vlm"),
    StageSpec("best_of", None, None, None, "best-of selection", -64.04, "driver", "final", model="argmax"),
    StageSpec("inversion", "nhr_ray.stages.inversion:InversionStage", "inverter", "inversion", "inversion", 99.40, phase="final",
              kind="text"),
    StageSpec("composition", None, None, "composition", "composition", 17.67, "driver", "final",
              model="bootstrap + concatenation"),
    StageSpec("consistency", "nhr_ray.stages.consistency:ConsistencyStage", "validator", "consistency", "backward consistency",
              -9.89, phase="final", kind="vlm"),
)  # fmt: skip


# Everything below reads STAGES when called (a test can put a stage in the table and see it everywhere).
def stages(phase: str | None = None) -> tuple[StageSpec, ...]:
    return tuple(s for s in STAGES if phase is None or s.phase == phase)


def spec(name: str) -> StageSpec:
    return next(s for s in STAGES if s.name == name)


def _unique(xs) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for x in xs if x is not None))


def model_roles() -> tuple[str, ...]:
    """Every model role, in pipeline order (designer, t2i, gate, editor, prefilter, validator, inverter)."""
    return _unique(s.role for s in STAGES if s.placement == "gpu")


def role_kinds() -> dict[str, str]:
    """Model role -> the kind of backend it takes (text, t2i, vlm, editor), in pipeline order."""
    return {s.role: s.kind for s in STAGES if s.placement == "gpu"}


def streaming_roles() -> tuple[str, ...]:
    """The model roles whose pools run the streaming phase (stages 1-8), in pipeline order."""
    return _unique(s.role for s in stages("stream") if s.placement == "gpu")


def attempt_stages() -> tuple[StageSpec, ...]:
    """The attempt chain, editor first."""
    return tuple(s for s in STAGES if s.attempt)


def stage_role() -> dict[str, str]:
    """Attempt stage -> the role its GPU-seconds are charged to."""
    return {s.name: s.role for s in attempt_stages()}


def sized_roles(kind: str) -> tuple[str, ...]:
    """Roles autosize plans from the funnel ("planned") or keeps at their count ("fixed")."""
    return _unique(s.role for s in STAGES if s.sizing == kind)


def funnel_rows() -> tuple[StageSpec, ...]:
    """The rows of the paper's Table 3, in order."""
    return tuple(s for s in STAGES if s.funnel_row is not None)
