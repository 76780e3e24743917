"""Role pool sizing from cost per edit attempt: pure code, no Ray (the driver applies the plans).

Every role's work is counted in GPU-seconds per edit attempt: the editor's own cost, the pre-filter's
cost times the share of edits it sees, a source image's cost divided by the attempts a source yields
(gate pass rate x instructions x M), and so on. The funnel's pass rates are folded in that way, so one
number per role says how many GPUs it needs for each GPU the editor gets.

`plan` fills the cluster's GPUs, node by node, by water-filling: it always adds one actor to the role
whose GPUs per unit of demand is lowest (the bottleneck), as long as that actor fits on some node.
`Rates` blends SPEC.md's costs (the priors) with what the run measured, and `moves` turns the change
from one plan to the next into retire/start steps, with some hysteresis so pools do not flap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# SPEC.md, one H100: GPU-seconds per edit attempt at the paper's ratios (the simulation agrees within
# a few %: editor ~7.9-9, pre-filter ~2.0 x edits kept, a source ~0.8 and a gate call 0.38 spread
# over the ~8-10 attempts a surviving source yields)
PRIOR_GPU_S_PER_ATTEMPT = {"t2i": 0.09, "gate": 0.05, "editor": 8.8, "prefilter": 2.0, "validator": 0.0}


class SizingError(ValueError):
    """The roles cannot all be placed on the cluster's GPUs (one line, names the role)."""


@dataclass(frozen=True)
class RoleSpec:
    gpus_per_actor: float
    demand: float  # GPU-seconds this role spends per edit attempt
    min_actors: int = 1
    max_actors: int | None = None


class Packing:
    """Free capacity per GPU of every node, packed as Ray packs: an actor of g >= 1 GPUs takes g whole
    free GPUs of one node; a fraction sits on one GPU that has that fraction free (two 0.75 actors
    never share a GPU, though a node's total would say they fit)."""

    def __init__(self, node_gpus: list[float]):
        self.free = [[1.0] * int(g) + ([g - int(g)] if g - int(g) > 1e-9 else []) for g in node_gpus]

    def _where(self, g: float) -> tuple[int, list[int]] | None:
        best = None
        for k, gpus in enumerate(self.free):
            if g >= 1:
                whole = [i for i, f in enumerate(gpus) if f >= 1 - 1e-9]
                if len(whole) >= round(g):
                    left = len(whole) - round(g)  # best fit: the node with the fewest whole GPUs left
                    if best is None or left < best[0]:
                        best = (left, k, whole[: round(g)])
            else:
                fit = [(f, i) for i, f in enumerate(gpus) if f + 1e-9 >= g]
                if fit:
                    f, i = min(fit)  # best fit: the fullest GPU it fits on, keeping whole GPUs whole
                    if best is None or f < best[0]:
                        best = (f, k, [i])
        return None if best is None else (best[1], best[2])

    def fits(self, g: float) -> bool:
        return self._where(g) is not None

    def take(self, g: float) -> bool:
        w = self._where(g)
        if w is None:
            return False
        k, idx = w
        for i in idx:
            self.free[k][i] -= min(g, 1.0)
        return True


def plan(node_gpus: list[float], roles: Mapping[str, RoleSpec]) -> dict[str, int]:
    """Actors per role for a cluster whose GPU nodes offer node_gpus. Every role gets min_actors (or
    SizingError); then GPUs go one actor at a time to the role with the least GPUs per unit of demand
    whose actor still fits. Roles of no demand keep min_actors; GPU-less roles are not planned here."""
    nodes = Packing(node_gpus)
    out = {r: 0 for r in roles}
    order = sorted(roles, key=lambda r: -roles[r].gpus_per_actor)  # big actors first: they fragment worst
    for r in order:
        s = roles[r]
        for _ in range(s.min_actors):
            if not nodes.take(s.gpus_per_actor):
                raise SizingError(
                    f"roles.{r}: {s.min_actors} actor(s) of {s.gpus_per_actor:g} GPUs do not fit next to the other roles "
                    f"on GPU nodes of {', '.join(f'{g:g}' for g in node_gpus) or 'none'} GPUs"
                )
            out[r] += 1
    while True:
        cands = []
        for r, s in roles.items():
            if s.demand <= 0 or s.gpus_per_actor <= 0 or (s.max_actors is not None and out[r] >= s.max_actors):
                continue
            if not nodes.fits(s.gpus_per_actor):
                continue
            cands.append((out[r] * s.gpus_per_actor / s.demand, -s.demand, r))
        if not cands:
            return out
        r = min(cands)[2]
        nodes.take(roles[r].gpus_per_actor)
        out[r] += 1


def throughput(counts: Mapping[str, int], roles: Mapping[str, RoleSpec]) -> float:
    """Attempts per second the plan sustains: its bottleneck role's GPUs over its demand."""
    rates = [counts[r] * s.gpus_per_actor / s.demand for r, s in roles.items() if s.demand > 0 and s.gpus_per_actor > 0]
    return min(rates) if rates else 0.0


def utilization(counts: Mapping[str, int], roles: Mapping[str, RoleSpec]) -> dict[str, float]:
    """Busy over held per role (and 'all') at the plan's steady-state throughput."""
    x = throughput(counts, roles)
    out, busy, held = {}, 0.0, 0.0
    for r, s in roles.items():
        g = counts[r] * s.gpus_per_actor
        if g > 0:
            out[r] = min(1.0, x * s.demand / g)
            busy += x * s.demand
            held += g
    out["all"] = busy / held if held else 0.0
    return out


@dataclass
class Rates:
    """GPU-seconds per edit attempt by role: priors blended with measurements. A prior counts as
    `prior_weight` attempts' worth of evidence, so the first measured batches move it only a little."""

    prior: dict[str, float] = field(default_factory=lambda: dict(PRIOR_GPU_S_PER_ATTEMPT))
    prior_weight: float = 200.0
    source_roles: tuple[str, ...] = ("t2i", "gate")
    busy_s: dict[str, float] = field(default_factory=dict)
    attempts: float = 0.0
    jobs_created: float = 0.0

    def observe(self, busy_by_role_s: Mapping[str, float], attempts_done: float, jobs_created: float | None = None) -> None:
        """Cumulative busy GPU-seconds by role, attempts completed and jobs created so far (not
        increments). Source roles are divided by the jobs their sources created (they run ahead of the
        editor: per attempt completed they would look many times dearer early in a run)."""
        self.busy_s = dict(busy_by_role_s)
        self.attempts = float(attempts_done)
        self.jobs_created = float(attempts_done if jobs_created is None else jobs_created)

    def per_attempt(self) -> dict[str, float]:
        w = self.prior_weight
        out = {}
        for r in set(self.prior) | set(self.busy_s):
            n = self.jobs_created if r in self.source_roles else self.attempts
            out[r] = (self.prior.get(r, 0.0) * w + self.busy_s.get(r, 0.0)) / (w + n)
        return out


def moves(current: Mapping[str, int], target: Mapping[str, int], roles: Mapping[str, RoleSpec],
          min_gain: float = 0.05) -> dict[str, int]:
    """Actors to add (+) or retire (-) per role to go from current to target. A move that retires
    actors (their in-flight work drains, a model loads elsewhere) needs the steady-state throughput to
    rise by min_gain (relative), so pools do not flap; one that only starts actors in GPUs nothing
    holds (a closed role's, say) needs any gain at all."""
    now, then = throughput(current, roles), throughput(target, roles)
    delta = {r: target[r] - current.get(r, 0) for r in target if target[r] != current.get(r, 0)}
    need = 0.0 if all(d > 0 for d in delta.values()) else min_gain
    if not delta or then <= now * (1 + need) + 1e-12:
        return {}
    return delta


def prior_job_cost() -> float:
    """What an edit job holds of the budget until eight were measured: SPEC.md's GPU-seconds per
    attempt summed over the roles of the attempt chain (the stage table's)."""
    from nhr_ray.stages.table import attempt_stages

    return sum(PRIOR_GPU_S_PER_ATTEMPT.get(s.role, 0.0) for s in attempt_stages())
