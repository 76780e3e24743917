"""The Ray side of pool sizing (`ray.autosize`): reads the cluster's GPUs, applies `sizing.plan` at
start, re-balances from measured costs during the run, and lets actors go once no more work can
reach them. Retiring an actor only stops new calls to it; it is killed after its in-flight batches
are done, and actors of the growing role are started only into GPUs that are free by then.
An actor lost anyway loses no job: the driver re-issues batches whose actor died."""

from __future__ import annotations

import logging
import time

import ray

from nhr_ray.runtime.poolcontrol import PoolControl
from nhr_ray.runtime.sizing import PRIOR_GPU_S_PER_ATTEMPT, Packing, Rates, RoleSpec, SizingError, moves, plan
from nhr_ray.stages import table

log = logging.getLogger(__name__)

PLANNED = table.sized_roles("planned")  # the GPU roles whose load follows the funnel (t2i, gate, editor, prefilter)
FIXED = table.sized_roles("fixed")  # configured counts: API models or one-off work (designer, validator)


def cluster_node_gpus(cfg) -> list[float]:
    """GPUs per alive node (an autoscaling cluster: its limit, as one pool of GPUs)."""
    if cfg.ray.autoscaling_max_gpus is not None:
        return [float(cfg.ray.autoscaling_max_gpus)]
    return [float(n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU", 0.0) > 0]


def role_specs(cfg, per_attempt: dict[str, float]) -> dict[str, RoleSpec]:
    out = {}
    for r in PLANNED + FIXED:
        rc = cfg.role(r)
        if rc.num_gpus <= 0:
            continue
        if r in FIXED:
            out[r] = RoleSpec(rc.num_gpus, 0.0, min_actors=rc.actors, max_actors=rc.actors)
        else:
            out[r] = RoleSpec(rc.num_gpus, per_attempt.get(r, 0.0), min_actors=1)
    return out


def initial_counts(cfg) -> dict[str, int]:
    """Actors per GPU role from SPEC.md's costs on this cluster (SizingError when they cannot fit)."""
    return plan(cluster_node_gpus(cfg), role_specs(cfg, PRIOR_GPU_S_PER_ATTEMPT))


class Sizer(PoolControl):
    def __init__(self, cfg, pools: dict, scheduler):
        super().__init__(cfg, pools, scheduler)
        self.node_gpus = cluster_node_gpus(cfg)
        self.rates = Rates()
        self.want: dict[str, int] = {}  # actors to start once GPUs are free
        self._last = time.monotonic()

    def counts(self) -> dict[str, int]:
        return {r: self.pools[r].n_live + self.want.get(r, 0) for r in PLANNED if r in self.pools}

    def tick(self, stats: dict, waiting: dict[str, float] | None = None) -> None:
        """Each driver loop: reap drained actors, start wanted ones into free GPUs, and every
        rebalance_every_s compare the plan at measured rates with what runs."""
        self.reap_and_refresh()
        self._start_wanted()
        now = time.monotonic()
        if now - self._last >= self.cfg.ray.rebalance_every_s and stats:
            self._last = now
            busy = {r: h * 3600.0 for r, h in (stats.get("busy_by_role_gpu_hours") or {}).items()}
            self.rates.observe(busy, stats.get("jobs_completed", 0), stats.get("jobs_total", 0))
            specs = role_specs(self.cfg, self.rates.per_attempt())
            specs = {r: s for r, s in specs.items() if r not in self.closed}
            cur = {r: self.counts().get(r, 0) if r in PLANNED else s.min_actors for r, s in specs.items()}
            try:
                target = plan(self.node_gpus, specs)
            except SizingError:
                return
            delta = moves(cur, target, specs, self.cfg.ray.rebalance_min_gain)
            if delta:
                self.event({"from": cur, "to": target})
                log.info("re-balancing pools: %s -> %s", cur, target)
                for r, d in delta.items():
                    if d < 0:
                        cancel = min(-d, self.want.get(r, 0))
                        self.want[r] = self.want.get(r, 0) - cancel
                        self.pools[r].retire(-d - cancel)
                for r, d in delta.items():
                    if d > 0:
                        self.want[r] = self.want.get(r, 0) + d
                for p in self.pools.values():
                    p.reap()
                self._start_wanted()
        self._declare()

    def _start_wanted(self) -> None:
        """Start wanted actors into the GPUs free now, packed per GPU as Ray packs them (a fraction
        needs one GPU with that much free, not just that much free on its node)."""
        nodes = Packing(self.node_gpus)
        held = [p for p in self.pools.values() if p.gpus_per_actor > 0]
        for p in sorted(held, key=lambda p: -p.gpus_per_actor):
            for _ in range(p.n_held):
                nodes.take(p.gpus_per_actor)
        for r in sorted(self.want, key=lambda r: -self.pools[r].gpus_per_actor):
            n = 0
            while n < self.want[r] and nodes.take(self.pools[r].gpus_per_actor):
                n += 1
            if n > 0:
                self.pools[r].grow(n)
                self.want[r] -= n

    def close(self, roles: tuple[str, ...]) -> None:
        for r in roles:
            self.want.pop(r, None)
        super().close(roles)
