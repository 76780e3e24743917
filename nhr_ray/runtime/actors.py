"""The Ray layer's actors: one generic StageActor hosts any stage (model loaded once in setup()),
and a Pool spreads batches over a role's actors with a bounded number in flight per actor."""

from __future__ import annotations

import itertools
import time
from typing import Any

import ray

from nhr_ray.stages.base import Stage


def _resolve(x: Any) -> Any:
    """Stages take plain data: fetch object refs nested one level in lists and dicts."""
    if isinstance(x, dict) and x and isinstance(next(iter(x.values())), ray.ObjectRef):
        keys = list(x)
        return dict(zip(keys, ray.get([x[k] for k in keys])))
    if isinstance(x, list) and x and isinstance(x[0], ray.ObjectRef):
        return ray.get(x)
    return x


@ray.remote(max_restarts=-1, max_task_retries=0)
class StageActor:
    """Hosts one stage. Nothing heavy in __init__: the backend loads in setup(), once."""

    def __init__(self, stage_cls: type[Stage], config_json: str, role: str | None):
        from nhr_ray.config import RunConfig

        self.config = RunConfig.model_validate_json(config_json)
        self.stage = stage_cls(self.config)
        self.role = role or "cpu"
        self.ready = False
        self.latency = None

    def setup(self) -> str:
        if not self.ready:
            from ray.util.metrics import Histogram

            from nhr_ray.runtime.metrics import LATENCY_BOUNDARIES

            self.stage.setup()
            self.latency = Histogram("nhr_call_latency_seconds", "Seconds per actor call (one batch).",
                                     boundaries=LATENCY_BOUNDARIES, tag_keys=("role",))
            self.ready = True
        return ray.get_runtime_context().get_node_id()

    def process(self, *args):
        self.setup()
        t0 = time.perf_counter()
        out = self.stage.process(*[_resolve(a) for a in args])
        self.latency.observe(time.perf_counter() - t0, tags={"role": self.role})
        return out

    def process_first(self, *args):
        """process() and keep only the rows (the attempt chain reads tallies off the rows)."""
        return self.process(*args)[0]

    def process_then(self, upstream: tuple, *args):
        """Run on the rows of an upstream stage's (rows, tally, cost) result; return both results."""
        rows = upstream[0]
        return upstream, self.process(rows, *args)

    def teardown(self) -> None:
        self.stage.teardown()


class Pool:
    """A role's actors. `submit` picks the least-loaded actor; callers bound what is in flight."""

    def __init__(self, role: str, stage_cls: type[Stage], cfg, n: int, num_gpus: float, num_cpus: float,
                 name_prefix: str | None = None):
        self.role = role
        cfg_json = cfg.model_dump_json()
        self.actors = [
            StageActor.options(num_gpus=num_gpus, num_cpus=num_cpus,
                               name=f"{name_prefix}-{role}-{k}" if name_prefix else None).remote(stage_cls, cfg_json, role)
            for k in range(n)
        ]
        self.load = [0] * n
        self._rr = itertools.count()
        self.gpus_per_actor = num_gpus

    def setup(self) -> list[ray.ObjectRef]:
        return [a.setup.remote() for a in self.actors]

    def pick(self) -> int:
        start = next(self._rr) % len(self.actors)
        order = list(range(start, len(self.actors))) + list(range(start))
        return min(order, key=lambda i: self.load[i])

    def capacity(self, per_actor: int) -> int:
        return len(self.actors) * per_actor - sum(self.load)

    def call(self, method: str, *args, actor: int | None = None) -> tuple[int, ray.ObjectRef]:
        i = self.pick() if actor is None else actor
        self.load[i] += 1
        return i, getattr(self.actors[i], method).remote(*args)

    def done(self, i: int) -> None:
        self.load[i] -= 1

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
