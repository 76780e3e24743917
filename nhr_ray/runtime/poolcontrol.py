"""What both ways of sizing pools during a run share (`autosize.Sizer` for a fixed cluster,
`elastic.Elastic` for an autoscaling one): the GPUs held per role go to the scheduler's reserved
clock whenever they change, retired actors are killed once drained, and roles that no more work can
reach are let go."""

from __future__ import annotations

import time


class PoolControl:
    def __init__(self, cfg, pools: dict, scheduler):
        self.cfg, self.pools, self.scheduler = cfg, pools, scheduler
        self.closed: set[str] = set()
        self.events: list[dict] = []  # what was changed, when (manifest, benchmarks, log)
        self._held: dict[str, float] = {}
        self._t0 = time.monotonic()

    def event(self, e: dict) -> None:
        self.events.append({"t": round(time.monotonic() - self._t0, 1), **e})

    def held(self) -> dict[str, float]:
        return {p.role: p.gpus_held() for p in self.pools.values() if p.gpus_per_actor}

    def _declare(self) -> None:
        h = self.held()
        if h != self._held:
            self._held = h
            self.scheduler.set_reserved.remote(h, time.monotonic())  # the scheduler runs on this node

    def reap_and_refresh(self) -> None:
        for p in self.pools.values():
            p.reap()
            p.refresh_nodes()

    def close(self, roles: tuple[str, ...]) -> None:
        """No more work can reach these roles: retire their live actors (killed once drained)."""
        for r in roles:
            if r in self.closed or r not in self.pools:
                continue
            self.closed.add(r)
            p = self.pools[r]
            p.retire(p.n_live)
            self.event({"closed": r})
        for p in self.pools.values():
            p.reap()
        self._declare()
