"""Demand-driven role pools (`ray.elastic`), for autoscaling clusters.

Each driver loop hands `Elastic.tick` the work waiting per role, in batches: source tasks not yet
sent (t2i, gate), edit jobs not yet drawn and affordable within the budget (editor), chains past
their editor (pre-filter, validator). A role whose waiting work stays at or above
`ray.elastic_grow_at` batches per live actor for `ray.elastic_sustain_s` grows, doubling up to
`roles.<r>.max_actors`, once the actors it started last are loaded (so a cluster booting nodes for
them is not asked for more on the strength of the same backlog); an actor with nothing queued for `ray.elastic_idle_s` is let go (the pool
keeps one while work can still reach it; none once none can). After every change the pools' resource
bundles go to the autoscaler (`request_resources`), so an autoscaling cluster starts nodes for a
backed-up queue at once rather than waiting for its pending-actor scan, and may remove them when the
pools shrink. New actors take work only once their model is loaded (`Pool.pick` prefers ready
actors), so a batch never waits on a node that is still booting.
"""

from __future__ import annotations

import logging
import time

from nhr_ray.runtime.cluster import STREAMING_ROLES, bundle
from nhr_ray.runtime.poolcontrol import PoolControl

log = logging.getLogger(__name__)


def bundles(pools: dict) -> list[dict[str, float]]:
    """One resource bundle per actor the pools hold or are starting (what the autoscaler must fit)."""
    return [bundle(p.gpus_per_actor, p.num_cpus) for p in pools.values() for _ in range(p.n_held)]


class Elastic(PoolControl):
    def __init__(self, cfg, pools: dict, scheduler):
        super().__init__(cfg, pools, scheduler)
        rc = cfg.ray
        self.grow_at, self.sustain_s, self.idle_s = rc.elastic_grow_at, rc.elastic_sustain_s, rc.elastic_idle_s
        self.limit = rc.autoscaling_max_gpus
        self.max = {r: cfg.role(r).max_actors for r in STREAMING_ROLES if r in pools and cfg.role(r).max_actors}
        self._backed: dict[str, float] = {}  # role -> since when its queue is backed up
        self._requested: list | None = None

    def tick(self, stats: dict, waiting: dict[str, float]) -> None:
        """waiting: batches of work waiting per role (not yet on any actor of it)."""
        self.reap_and_refresh()
        now = time.monotonic()
        for r, cap in self.max.items():
            if r in self.closed:
                continue
            p = self.pools[r]
            q = float(waiting.get(r, 0.0))
            if q >= self.grow_at * max(p.n_ready_live, 1):
                since = self._backed.setdefault(r, now)
                starting = p.n_live - p.n_ready_live  # grown before and still loading: judge once they work
                if now - since >= self.sustain_s and p.n_live < cap and not starting:
                    self._grow(r, min(cap - p.n_live, max(1, p.n_live)), q)
                    self._backed[r] = now  # the next step needs a fresh sustained backlog (new actors load first)
            else:
                self._backed.pop(r, None)
            if q <= 0:
                idle = p.idle_actors(now, self.idle_s)
                keep = 1 if p.n_live else 0
                let_go = idle[: max(0, p.n_live - keep)]
                if let_go:
                    p.retire_actors(let_go)
                    self.event({"role": r, "shrink": len(let_go), "live": p.n_live})
        self.reap_and_refresh()
        self._declare()
        self._request()

    def _grow(self, role: str, n: int, waiting: float) -> None:
        p = self.pools[role]
        if self.limit is not None:  # never ask past the autoscaler's limit
            free = self.limit - sum(self.held().values())
            n = min(n, int((free + 1e-9) // p.gpus_per_actor)) if p.gpus_per_actor else n
        if n <= 0:
            return
        p.grow(n)
        self.event({"role": role, "grow": n, "live": p.n_live, "waiting_batches": round(waiting, 1)})
        log.info("elastic: %s backed up (%.0f batches waiting): +%d actors -> %d", role, waiting, n, p.n_live)

    def _request(self) -> None:
        b = bundles(self.pools)
        if b != self._requested:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=b)
            self._requested = b

    def close(self, roles: tuple[str, ...]) -> None:
        super().close(roles)
        self._request()
