"""A role's actors: one Slot per actor, one state each. A Pool spreads calls over its live actors
(least loaded, on a preferred node when it has room), bounded by the caller; the Starter
(runtime/starter.py) decides when asked-for actors are created; elastic pools and the sizer grow,
retire and reap them through the public methods here.

    WAITING --create--> LOADING --setup answered--> READY
       \\________________\\____________________________\\--retire--> RETIRED --reap (idle)--> DEAD
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray

from nhr_ray.runtime.actors import StageActor

if TYPE_CHECKING:
    from nhr_ray.runtime.starter import Starter
    from nhr_ray.stages.base import Stage


class State(enum.Enum):
    WAITING = "waiting"  # asked for; the starter creates it when it may
    LOADING = "loading"  # created; setup() (the model load) has not answered ok
    READY = "ready"  # setup() answered: calls run at once
    RETIRED = "retired"  # takes no new call; killed once its calls are done
    DEAD = "dead"  # killed (or retired before it was ever created)


LIVE = (State.WAITING, State.LOADING, State.READY)


@dataclass
class Slot:
    state: State = State.WAITING
    handle: Any = None  # the StageActor, once created
    load: int = 0  # calls in flight on it
    node: str | None = None  # its node id, once setup() answered
    last_busy: float = field(default_factory=time.monotonic)  # its last call or completion (idle detection)
    setup_ref: Any = None  # setup() in flight
    setup_error: Exception | None = None  # why its setup() failed

    @property
    def live(self) -> bool:
        return self.state in LIVE


class Pool:
    """A role's actors. Calls are typed: `run(batch, ...)` and `run_after(upstream, ...)` answer a
    chain of StageResults (runtime/actors.py), `attempt_rows(...)` ends an attempt chain; each returns
    (actor index, ref), and the index goes back to `done()` when the ref is in."""

    def __init__(self, role: str, stage_cls: type[Stage], cfg, n: int, num_gpus: float, num_cpus: float,
                 name_prefix: str | None = None, starter: Starter | None = None):  # fmt: skip
        self.role = role
        self._stage_cls, self._cfg_json, self._prefix = stage_cls, cfg.model_dump_json(), name_prefix
        self.num_cpus = num_cpus
        self.gpus_per_actor = num_gpus
        self.slots: list[Slot] = []
        self._rr = itertools.count()
        self.starter = starter
        if starter is not None:
            starter.register(self)
        self.grow(n)

    # -- actors: asking, creating, loading --------------------------------------------------------
    def grow(self, n: int) -> list[int]:
        """Ask for n more actors: created now, or when the starter lets them (held meanwhile)."""
        new = []
        for _ in range(n):
            self.slots.append(Slot())
            k = len(self.slots) - 1
            new.append(k)
            if self.starter is None:
                self.create(k)
            else:
                self.starter.request(self, k)
        return new

    def create(self, k: int) -> None:
        """Create actor k now (asked for by grow(); the starter decides when). It loads its model at once."""
        s = self.slots[k]
        name = f"{self._prefix}-{self.role}-{k}" if self._prefix else None
        s.handle = (StageActor.options(num_gpus=self.gpus_per_actor, num_cpus=self.num_cpus, name=name)
                    .remote(self._stage_cls, self._cfg_json, self.role))  # fmt: skip
        s.state, s.last_busy = State.LOADING, time.monotonic()
        s.setup_ref = s.handle.setup.remote()  # answers its node id

    def refresh_nodes(self) -> None:
        """Take in the setup() answers that are in (never blocks)."""
        pending = [s for s in self.slots if s.setup_ref is not None]
        if not pending:
            return
        ready, _ = ray.wait([s.setup_ref for s in pending], num_returns=len(pending), timeout=0)
        done = set(ready)
        for s in pending:
            if s.setup_ref in done:
                ref, s.setup_ref = s.setup_ref, None
                try:
                    s.node = ray.get(ref)
                    s.last_busy = time.monotonic()
                    if s.state is State.LOADING:
                        s.state = State.READY
                except Exception as e:  # its model did not load, or the actor was lost: kept for
                    s.setup_error = e  # the driver (fatal at start; later a re-issue tells)

    def setup_errors(self) -> dict[int, Exception]:
        """Actor -> why its setup() failed."""
        return {k: s.setup_error for k, s in enumerate(self.slots) if s.setup_error is not None}

    def n_loading(self) -> int:
        """Actors created whose setup() has not answered yet."""
        self.refresh_nodes()
        return sum(1 for s in self.slots if s.setup_ref is not None)

    def n_started(self) -> int:
        """Actors created and not killed."""
        return sum(1 for s in self.slots if s.handle is not None and s.state is not State.DEAD)

    def drop_unstarted(self, k: int) -> bool:
        """Actor k, not created yet, was retired (or killed) meanwhile: dead, never to be created."""
        s = self.slots[k]
        if not s.live:
            s.state = State.DEAD
            return True
        return False

    def setup(self, which: list[int] | None = None) -> list[ray.ObjectRef]:
        """setup() on these actors (all by default), creating any still waiting: refs of their node ids.
        Also how a re-issue waits for actors Ray is restarting."""
        which = range(len(self.slots)) if which is None else which
        for i in which:
            if self.slots[i].handle is None:
                self.starter.start_now(self, i)
        return [self.slots[i].handle.setup.remote() for i in which]

    # -- counts ------------------------------------------------------------------------------------
    @property
    def n_live(self) -> int:
        return sum(1 for s in self.slots if s.live)

    @property
    def n_ready_live(self) -> int:
        return sum(1 for s in self.slots if s.state is State.READY)

    @property
    def n_held(self) -> int:
        """Actors not killed yet (live, retired and draining, or still starting): they hold resources."""
        return sum(1 for s in self.slots if s.state is not State.DEAD)

    @property
    def n_asked(self) -> int:
        """Actors asked for over the run (dead ones included)."""
        return len(self.slots)

    @property
    def total_load(self) -> int:
        return sum(s.load for s in self.slots)

    def gpus_held(self) -> float:
        return self.gpus_per_actor * self.n_held

    def handles(self) -> list:
        """Each actor's StageActor handle (None: not created yet)."""
        return [s.handle for s in self.slots]

    def node_of(self, i: int) -> str | None:
        return self.slots[i].node

    def up(self, idx: list[int]) -> bool:
        """Whether these actors all loaded (or were let go)."""
        return all(self.slots[k].state in (State.READY, State.RETIRED, State.DEAD) for k in idx)

    # -- calls ---------------------------------------------------------------------------------------
    def _takers(self) -> list[int]:
        """Live actors that take calls: the ready ones; while none is ready, any live one created (its
        call waits for the model to load rather than not run)."""
        live = [i for i, s in enumerate(self.slots) if s.live and s.handle is not None]
        ready = [i for i in live if self.slots[i].state is State.READY]
        return ready or live

    def pick(self, node: str | None = None) -> int:
        idx = self._takers()
        if not idx:  # every actor let go (and a lost batch comes back), or all still waiting to start
            waiting = [i for i, s in enumerate(self.slots) if s.state is State.WAITING]
            idx = waiting[:1] or self.grow(1)
            if self.slots[idx[0]].handle is None:
                self.starter.start_now(self, idx[0])
        start = next(self._rr) % len(idx)
        order = idx[start:] + idx[:start]
        load = [self.slots[i].load for i in order]
        if node is not None:
            local = [i for i in order if self.slots[i].node == node]
            if local:
                best = min(local, key=lambda i: self.slots[i].load)
                if self.slots[best].load <= min(load):  # soft: only when no busier than the rest
                    return best
        return min(order, key=lambda i: self.slots[i].load)

    def capacity(self, per_actor: int) -> int:
        return sum(per_actor - self.slots[i].load for i in self._takers())

    def _submit(self, send, actor: int | None, node: str | None) -> tuple[int, ray.ObjectRef]:
        i = self.pick(node) if actor is None else actor
        s = self.slots[i]
        s.load += 1
        s.last_busy = time.monotonic()
        return i, send(s.handle)

    def run(self, *args, actor: int | None = None, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """The stage on these arguments: a chain of one StageResult."""
        return self._submit(lambda a: a.run.remote(*args), actor, node)

    def run_after(self, upstream: ray.ObjectRef, *args, node: str | None = None) -> tuple[int, ray.ObjectRef]:
        """The stage on the rows of an upstream chain's last result: the chain, one link longer."""
        return self._submit(lambda a: a.run_after.remote(upstream, *args), None, node)

    def attempt_rows(self, chain: ray.ObjectRef, image_format: str, keep_images: str,
                     node: str | None = None) -> tuple[int, ray.ObjectRef]:  # fmt: skip
        """The end of an attempt chain, on a CPU actor: a ChainEnd (runtime/actors.py)."""
        return self._submit(lambda a: a.attempt_rows.remote(chain, image_format, keep_images), None, node)

    def done(self, i: int) -> None:
        s = self.slots[i]
        s.load -= 1
        s.last_busy = time.monotonic()

    # -- letting go ----------------------------------------------------------------------------------
    def idle_actors(self, now: float, idle_s: float) -> list[int]:
        """Ready actors with nothing queued since at least idle_s seconds (longest idle first)."""
        idle = [i for i, s in enumerate(self.slots) if s.state is State.READY and s.load == 0 and now - s.last_busy >= idle_s]
        return sorted(idle, key=lambda i: self.slots[i].last_busy)

    def retire_actors(self, idx: list[int]) -> None:
        for i in idx:
            if self.slots[i].live:
                self.slots[i].state = State.RETIRED

    def retire(self, n: int) -> int:
        """Stop giving new calls to n live actors (not started yet first, then the least loaded)."""
        live = sorted((i for i, s in enumerate(self.slots) if s.live),
                      key=lambda i: (self.slots[i].handle is not None, self.slots[i].load))  # fmt: skip
        self.retire_actors(live[:n])
        return min(n, len(live))

    def reap(self) -> int:
        """Kill retired actors with nothing in flight; returns how many were killed now."""
        n = 0
        for s in self.slots:
            if s.state is State.RETIRED and s.load == 0:
                self._kill(s)
                n += 1
        return n

    def shutdown(self) -> None:
        for s in self.slots:
            if s.state is not State.DEAD:
                self._kill(s)

    @staticmethod
    def _kill(s: Slot) -> None:
        if s.handle is not None:
            ray.kill(s.handle)
        s.state = State.DEAD
