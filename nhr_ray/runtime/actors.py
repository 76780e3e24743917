"""The Ray layer's actors: one generic StageActor hosts any stage (model loaded once in setup()),
and a Pool spreads batches over a role's actors with a bounded number in flight per actor. A
Starter (runtime/starter.py, ray.max_starting_actors) lets only so many actors load at once."""

from __future__ import annotations

import itertools
import time
from typing import Any

import ray

from nhr_ray.runtime.starter import Starter
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
        from nhr_ray.redact import install_log_redaction

        self.config = RunConfig.model_validate_json(config_json)
        self.stage = stage_cls(self.config)
        install_log_redaction(self.stage.redact)  # this actor's log records (SDKs' included) never carry a key
        self.role = role or "cpu"
        self.ready = False
        self.latency = None

    def setup(self) -> str:
        if not self.ready:
            from ray.util.metrics import Histogram

            from nhr_ray.runtime.metrics import LATENCY_BOUNDARIES
            from nhr_ray.runtime.ratelimit import RayLimits

            ctx = ray.get_runtime_context()
            gpus = ctx.get_accelerator_ids().get("GPU", [])
            self.stage.device = f"{ctx.get_node_id()}/{','.join(map(str, gpus))}" if gpus else None
            self.stage.limits = RayLimits()  # the backend's rate limits and spend ledger, cluster-wide
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

    def rows(self, attempts: list, image_format: str, keep_images: str):
        """The end of an attempt chain, on a CPU actor: Parquet rows (PNG encoding included) built
        here, off the GPU actors and the driver; the attempts go back without their edited images."""
        import dataclasses

        from nhr_ray.io.rows import AttemptRow

        rows = [AttemptRow.of(a, image_format, keep_images).to_row() for a in attempts]
        return [dataclasses.replace(a, edited=None, sim_truth=None) for a in attempts], rows

    def teardown(self) -> None:
        self.stage.teardown()


class Pool:
    """A role's actors. `call` picks the least-loaded live actor (on a preferred node when one is
    given and has room); callers bound what is in flight. `grow` starts actors, `retire` stops new
    calls to some, and `reap` kills retired actors once their in-flight batches are done."""

    def __init__(self, role: str, stage_cls: type[Stage], cfg, n: int, num_gpus: float, num_cpus: float,
                 name_prefix: str | None = None, starter: Starter | None = None):
        self.role = role
        self._stage_cls, self._cfg_json, self._prefix = stage_cls, cfg.model_dump_json(), name_prefix
        self.num_cpus = num_cpus
        self.gpus_per_actor = num_gpus
        self.actors: list = []  # None: asked for, waiting for the starter to create it
        self.load: list[int] = []
        self.live: list[bool] = []  # False: retired, takes no new call
        self.dead: list[bool] = []  # killed (after retiring and draining)
        self.node: list[str | None] = []  # node id, once setup() answered
        self.ready: list[bool] = []  # setup() answered: the model is loaded, calls run at once
        self.last_busy: list[float] = []  # monotonic time of its last call or completion (idle detection)
        self._rr = itertools.count()
        self._node_refs: dict[int, ray.ObjectRef] = {}
        self.setup_errors: dict[int, Exception] = {}  # actor -> why its setup() failed
        self.starter = starter
        if starter is not None:
            starter.register(self)
        self.grow(n)

    def grow(self, n: int) -> list[int]:
        """Ask for n more actors: created now, or when the starter lets them (they count as held meanwhile)."""
        new = []
        for _ in range(n):
            k = len(self.actors)
            self.actors.append(None)
            self.load.append(0)
            self.live.append(True)
            self.dead.append(False)
            self.node.append(None)
            self.ready.append(False)
            self.last_busy.append(time.monotonic())
            new.append(k)
            if self.starter is None:
                self.create(k)
            else:
                self.starter.request(self, k)
        return new

    def create(self, k: int) -> None:
        """Create actor k now (it was asked for by grow(); the starter decides when)."""
        name = f"{self._prefix}-{self.role}-{k}" if self._prefix else None
        self.actors[k] = (StageActor.options(num_gpus=self.gpus_per_actor, num_cpus=self.num_cpus, name=name)
                          .remote(self._stage_cls, self._cfg_json, self.role))
        self.last_busy[k] = time.monotonic()
        self._node_refs[k] = self.actors[k].setup.remote()  # loads the model now; answers its node

    def refresh_nodes(self) -> None:
        """Note the node of actors whose setup() has answered since (never blocks)."""
        if not self._node_refs:
            return
        ready, _ = ray.wait(list(self._node_refs.values()), num_returns=len(self._node_refs), timeout=0)
        done = set(ready)
        for k, ref in list(self._node_refs.items()):
            if ref in done:
                del self._node_refs[k]
                try:
                    self.node[k] = ray.get(ref)
                    self.ready[k] = True
                    self.last_busy[k] = time.monotonic()
                except Exception as e:  # its model did not load, or the actor was lost: kept for
                    self.setup_errors[k] = e  # the driver (fatal at start; later a re-issue tells)

    def n_loading(self) -> int:
        """Actors created whose setup() has not answered yet."""
        if self._node_refs:
            self.refresh_nodes()
        return len(self._node_refs)

    def n_started(self) -> int:
        """Actors created and not killed."""
        return sum(1 for i, a in enumerate(self.actors) if a is not None and not self.dead[i])

    def drop_unstarted(self, k: int) -> bool:
        """Actor k, not created yet, was retired (or killed) meanwhile: mark it dead, never to be created."""
        if self.dead[k] or not self.live[k]:
            self.dead[k] = True
            return True
        return False

    @property
    def n_live(self) -> int:
        return sum(self.live)

    @property
    def n_ready_live(self) -> int:
        return sum(1 for i in range(len(self.actors)) if self.live[i] and self.ready[i])

    def _takers(self) -> list[int]:
        """Live actors that take calls: the ready ones; while none is ready, any live one created (its
        call waits for the model to load rather than not run)."""
        live = [i for i in range(len(self.actors)) if self.live[i] and self.actors[i] is not None]
        ready = [i for i in live if self.ready[i]]
        return ready or live

    @property
    def n_held(self) -> int:
        """Actors not killed yet (live, retired and draining, or still starting): they hold resources."""
        return sum(1 for d in self.dead if not d)

    def gpus_held(self) -> float:
        return self.gpus_per_actor * self.n_held

    def setup(self, which: list[int] | None = None) -> list[ray.ObjectRef]:
        which = range(len(self.actors)) if which is None else which
        for i in which:
            if self.actors[i] is None:
                self.starter.start_now(self, i)
        return [self.actors[i].setup.remote() for i in which]

    def pick(self, node: str | None = None) -> int:
        idx = self._takers()
        if not idx:  # every actor let go (and a lost batch comes back), or all still waiting to start
            waiting = [i for i in range(len(self.actors)) if self.live[i] and self.actors[i] is None]
            idx = waiting[:1] or self.grow(1)
            if self.actors[idx[0]] is None:
                self.starter.start_now(self, idx[0])
        start = next(self._rr) % len(idx)
        order = idx[start:] + idx[:start]
        if node is not None:
            local = [i for i in order if self.node[i] == node]
            if local:
                best = min(local, key=lambda i: self.load[i])
                if self.load[best] <= min(self.load[i] for i in order):  # soft: only when no busier than the rest
                    return best
        return min(order, key=lambda i: self.load[i])

    def capacity(self, per_actor: int) -> int:
        return sum(per_actor - self.load[i] for i in self._takers())

    def _submit(self, send, actor: int | None, node: str | None) -> tuple[int, ray.ObjectRef]:
        i = self.pick(node) if actor is None else actor
        self.load[i] += 1
        self.last_busy[i] = time.monotonic()
        return i, send(self.actors[i])

    # typed calls: (actor index, ref of its answer); the index goes back to done() when it is in
    def process(self, *args, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """The stage's full answer (rows, tally, ...) for these arguments."""
        return self._submit(lambda a: a.process.remote(*args), None, node)

    def process_then(self, upstream: ray.ObjectRef, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """(upstream's answer, this stage's answer on upstream's rows)."""
        return self._submit(lambda a: a.process_then.remote(upstream), None, node)

    def process_rows(self, *args, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """Only the rows of the stage's answer (an attempt chain's link)."""
        return self._submit(lambda a: a.process_first.remote(*args), None, node)

    def attempt_rows(self, attempts: ray.ObjectRef, image_format: str, keep_images: str,
                     node: str | None = None) -> tuple[int, ray.ObjectRef]:  # fmt: skip
        """The end of an attempt chain: (attempts without their images, attempts-table rows)."""
        return self._submit(lambda a: a.rows.remote(attempts, image_format, keep_images), None, node)

    def call(self, method: str, *args, actor: int | None = None, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """Any actor method by name (finalize's pools, tests); the driver uses the typed calls above."""
        return self._submit(lambda a: getattr(a, method).remote(*args), actor, node)

    def done(self, i: int) -> None:
        self.load[i] -= 1
        self.last_busy[i] = time.monotonic()

    def idle_actors(self, now: float, idle_s: float) -> list[int]:
        """Live, ready actors with nothing queued since at least idle_s seconds (longest idle first)."""
        idle = [i for i in range(len(self.actors))
                if self.live[i] and self.ready[i] and self.load[i] == 0 and now - self.last_busy[i] >= idle_s]
        return sorted(idle, key=lambda i: self.last_busy[i])

    def retire_actors(self, idx: list[int]) -> None:
        for i in idx:
            self.live[i] = False

    def retire(self, n: int) -> int:
        """Stop giving new calls to n live actors (the least loaded); returns how many were retired."""
        live = sorted((i for i in range(len(self.actors)) if self.live[i]),  # not started yet, then least loaded
                      key=lambda i: (self.actors[i] is not None, self.load[i]))
        for i in live[:n]:
            self.live[i] = False
        return min(n, len(live))

    def reap(self) -> int:
        """Kill retired actors with nothing in flight; returns how many were killed now."""
        n = 0
        for i, a in enumerate(self.actors):
            if not self.live[i] and not self.dead[i] and self.load[i] == 0:
                if a is not None:
                    ray.kill(a)
                self.dead[i] = True
                n += 1
        return n

    def shutdown(self) -> None:
        for i, a in enumerate(self.actors):
            if not self.dead[i]:
                if a is not None:
                    ray.kill(a)
                self.dead[i] = True
