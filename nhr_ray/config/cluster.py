"""Where the work runs: one pool per model role, and the Ray cluster."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from nhr_ray.config.base import Strict

SIM = "sim"  # the simulation world's backend name, one per role kind (nhr_ray/backends/sim)


class RoleConfig(Strict):
    backend: str | None = Field(
        None,
        description="Registered backend name (`nhr-ray backends` lists them); `sim` for the simulation. Unset in a config "
        "that names no real backend: `sim`. A config that names a real backend for any role must name every role's.",
    )
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

    @model_validator(mode="after")
    def _unset_is_sim_when_nothing_is_real(self):
        """A config naming no real backend is the simulation: its unset roles are `sim` (and every
        output says so). One naming a real backend keeps its unset roles unset: RunConfig refuses it."""
        roles = [getattr(self, r) for r in ROLE_DEFAULTS]
        if all(rc.backend in (None, SIM) for rc in roles):
            for rc in roles:
                if rc.backend is None:
                    rc.backend = SIM
        return self

    def unset(self) -> list[str]:
        return [r for r in ROLE_DEFAULTS if getattr(self, r).backend is None]


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
