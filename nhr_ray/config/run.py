"""The whole run's config: one section per stage and per concern, checked together."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, ValidationError, model_validator

from nhr_ray.config.api import ApiConfig
from nhr_ray.config.base import Strict, first_error
from nhr_ray.config.cluster import SIM, RayConfig, RoleConfig, RolesConfig
from nhr_ray.config.judging import JudgingConfig
from nhr_ray.config.output import AnswersConfig, ModelsConfig, OutputConfig, SimConfig
from nhr_ray.config.scheduler import SchedulerConfig
from nhr_ray.config import stages as S
from nhr_ray.judges.profiles import profile_class
from nhr_ray.roles import ROLE_KINDS, BackendUnavailable, options_class


class RunConfig(Strict):
    seed: int = Field(
        0, ge=0, le=2**63 - 1,
        description="Run seed: every outcome is a function of it and the item's id (0 to 2^63-1: numpy's generators "
        "take no negative seed, and the OpenAI API's seed is a 64-bit integer).",
    )
    task: S.TaskConfig = Field(default_factory=S.TaskConfig)
    sources: S.SourcesConfig = Field(default_factory=S.SourcesConfig)
    gate: S.GateConfig = Field(default_factory=S.GateConfig)
    edit: S.EditConfig = Field(default_factory=S.EditConfig)
    prefilter: S.PrefilterConfig = Field(default_factory=S.PrefilterConfig)
    lowlevel: S.LowLevelConfig = Field(default_factory=S.LowLevelConfig)
    validation: S.ValidationConfig = Field(default_factory=S.ValidationConfig)
    inversion: S.InversionConfig = Field(default_factory=S.InversionConfig)
    composition: S.CompositionConfig = Field(default_factory=S.CompositionConfig)
    consistency: S.ConsistencyConfig = Field(default_factory=S.ConsistencyConfig)
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

    @model_validator(mode="before")
    @classmethod
    def _real_judge_names_every_role(cls, data):
        """A real backend named only by an ensemble judge counts as a real backend named (_backends_named)."""
        from nhr_ray.config.load import ensemble_judges

        real = [f"{j.get('name')}: {j['backend']}" for j in ensemble_judges(data) if j.get("backend") not in (None, SIM)]
        roles = data.get("roles") if isinstance(data, dict) else None
        roles = roles if isinstance(roles, dict) else {}
        unset = [r for r in ROLE_KINDS if not isinstance(roles.get(r), dict) or roles[r].get("backend") is None]
        if real and unset:
            raise ValueError(
                f"{', '.join(f'roles.{r}.backend' for r in unset)}: not named, while judging.ensemble judge {', '.join(real)} "
                "is real. A config that names a real backend names every role's (`sim` to simulate one): no role runs "
                "on the simulation unasked"
            )
        return data

    @model_validator(mode="after")
    def _roles_exist(self):
        for role in ROLE_KINDS:
            rc: RoleConfig = getattr(self.roles, role)
            if rc.backend is None:  # unset: _backends_named says so
                continue
            try:
                options = options_class(role, rc.backend)
            except (KeyError, BackendUnavailable) as e:
                raise ValueError(f"roles.{role}.backend: {e}") from None
            try:
                options.model_validate(rc.options)
            except ValidationError as e:
                raise ValueError(f"roles.{role}.options: {first_error(e)}") from None
        return self

    @model_validator(mode="after")
    def _backends_named(self):
        """Never simulated by accident: a config naming a real backend for any role names every role's."""
        unset = self.roles.unset()
        if unset:
            real = [f"{r}: {self.role(r).backend}" for r in ROLE_KINDS if self.role(r).backend not in (None, SIM)]
            raise ValueError(
                f"{', '.join(f'roles.{r}.backend' for r in unset)}: not named, while {', '.join(real)} "
                f"{'is' if len(real) == 1 else 'are'} real. A config that names a real backend names every role's "
                f"(`sim` to simulate one, e.g. roles.{unset[0]}.backend: sim): no role runs on the simulation unasked"
            )
        return self

    @model_validator(mode="after")
    def _profiles_fit_backends(self):
        for stage, role in (("prefilter", "prefilter"), ("validation", "validator"), ("consistency", "validator")):
            pc = self.judging.for_stage(stage)
            if getattr(self.roles, role).backend == "sim" and not profile_class(pc.profile).sim_speaks_it:
                raise ValueError(f"judging.{stage}.profile: {pc.profile!r} needs a real judge model; the simulated "
                                 f"roles.{role} answers only in the 'nhr' formats")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _ensemble_judges_fit(self):
        for j in self.validator_judges("validation") if self.judging.ensemble else ():
            where = f"judging.ensemble.judges[{j.name}]"
            try:
                options_class("validator", j.backend).model_validate(j.options)
            except (KeyError, BackendUnavailable) as e:
                raise ValueError(f"{where}.backend: {e}") from None
            except ValidationError as e:
                raise ValueError(f"{where}.options: {first_error(e)}") from None
            if j.backend == SIM and not profile_class(j.profile).sim_speaks_it:
                raise ValueError(f"{where}.profile: {j.profile!r} needs a real judge model; a simulated judge answers "
                                 "only in the 'nhr' formats")  # fmt: skip
        return self

    def validator_judges(self, stage: str = "validation") -> list[PanelJudge]:
        """The judges of the validator role for a judging stage ('validation', 'consistency'): the
        ensemble's, or roles.validator's one judge (named 'validator') with that stage's profile."""
        rc, ens = self.roles.validator, self.judging.ensemble
        if ens is None:
            pc = self.judging.for_stage(stage)
            return [PanelJudge("validator", rc.backend, dict(rc.options), pc.profile, pc.prompt_dir)]
        return [
            PanelJudge(j.name, j.backend or rc.backend,
                       {**rc.options, **(j.options or {})} if j.backend is None else dict(j.options or {}),
                       j.profile, j.prompt_dir, j.bias, j.error_sd)
            for j in ens.judges
        ]  # fmt: skip

    def role(self, name: str) -> RoleConfig:
        return getattr(self.roles, name)

    def simulated_roles(self) -> list[str]:
        """The roles whose output this run's data rests on that run on the simulation (`sim`), in
        pipeline order: what manifest.json, funnel.json, the card, the report and the last line list.
        A role the run does not use (the designer and T2I with photo sources, a disabled gate,
        pre-filter or inversion) is not listed: none of its output reaches the data."""
        unused = {"designer": self.sources.kind == "images", "t2i": self.sources.kind == "images",
                  "gate": not self.gate.enabled, "prefilter": not self.prefilter.enabled,
                  "inverter": not self.inversion.enabled}  # fmt: skip
        sim = {r: self.role(r).backend == SIM for r in ROLE_KINDS}
        sim["validator"] = any(j.backend == SIM for j in self.validator_judges())
        return [r for r in ROLE_KINDS if sim[r] and not unused.get(r, False)]


@dataclass(frozen=True)
class PanelJudge:
    """One judge of the validator role, resolved: its backend, options and profile."""

    name: str
    backend: str | None
    options: dict
    profile: str
    prompt_dir: str | None = None
    bias: dict | None = None
    error_sd: dict | None = None
