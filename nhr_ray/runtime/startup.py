"""Starting a run's streaming phase: the pools (one per role of the stage table), the scheduler
actor, source admission and whatever sizes the pools during the run (autosize or elastic); a
backend that fails to load fails the run at once (check_start). A mixin of the Miner."""

from __future__ import annotations

import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from nhr_ray.runtime.pool import Pool
from nhr_ray.runtime.admission import SourceAdmission, batch_estimate
from nhr_ray.runtime.autosize import Sizer, initial_counts
from nhr_ray.runtime.bookkeeping import Book
from nhr_ray.runtime.checkpoint_sync import CheckpointSync
from nhr_ray.runtime.elastic import Elastic
from nhr_ray.runtime.starter import Starter
from nhr_ray.scheduler.actor import SchedulerActor
from nhr_ray.scheduler.policies import make_policy
from nhr_ray.stages import table


class Startup:
    def start_pools(self) -> None:
        cfg = self.cfg
        self.book = Book(ray.get_runtime_context().get_node_id())  # t0: the timeline's and the reserved clock's
        sized = initial_counts(cfg) if cfg.ray.autosize else {}

        # registered in pipeline order: with ray.max_starting_actors, sources' roles load first
        self.starter = Starter(cfg.ray.max_starting_actors) if cfg.ray.max_starting_actors else None

        # one pool per role, keyed by it; the CPU pools after the model roles' (the Starter's tie order)
        specs = sorted(table.stages("stream"), key=lambda s: s.placement == "cpu")
        self.pools = {s.role: self._pool(s, sized) for s in specs}
        s = cfg.scheduler
        self.ckpt = CheckpointSync(self.store)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # lives and dies with the driver's node; built from the config (JobScheduler.from_config). Atomic
        # checkpoints in a local file (copied to a remote --out by the driver); a resumed run continues
        # from the checkpoint (same permutation, ledger, policy state) and reconciles it with the record
        self.scheduler = SchedulerActor.options(scheduling_strategy=here).remote(run_config=cfg, checkpoint_path=self.ckpt.path)
        # jobs per pair as the policy sets them (per_category_m), so source images are let go in time
        self._attempts_for = make_policy(s.policy, s.policy_options, [], cfg.edit.attempts_per_instruction, s.unit).attempts_for
        # sources are made only while the pinned ones (and their jobs) stay within the limits
        self.admission = SourceAdmission(cfg.sources.max_pinned_bytes, cfg.sources.max_pending_jobs,
                                         batch_estimate(cfg, self._attempts_for, lambda: self.admission.largest))
        # the reserved clock: GPUs this pipeline's actors hold, from their creation (t0, on this
        # node's monotonic clock, which the scheduler pinned here shares), not from whenever the
        # scheduler's own process gets to the call
        self.scheduler.set_reserved.remote(
            {p.role: p.gpus_held() for p in self.pools.values() if p.gpus_per_actor}, self.book.t0
        )
        if cfg.ray.autosize:
            self.sizer = Sizer(cfg, self.pools, self.scheduler)
        elif cfg.ray.elastic:
            self.sizer = Elastic(cfg, self.pools, self.scheduler)
        # every actor loads its model now (grow() called setup()); work starts as soon as the
        # actors it needs are loaded (sources while editors still load), and a backend that fails
        # to load fails the run at once (check_start, every driver loop until all are up)
        self._initial = {r: p.n_asked for r, p in self.pools.items()}
        self._all_up = False

    def _pool(self, spec, sized: dict[str, int]) -> Pool:
        """A stage's pool: a model role's (roles.<role>: actors, GPUs, CPUs) or CPU actors (ray.cpu_workers)."""
        if spec.placement == "cpu":
            return Pool(spec.role, spec.load(self.cfg), self.cfg, self.cfg.ray.cpu_workers, 0, 0.5, self.run_name, self.starter)
        rc = self.cfg.role(spec.role)
        return Pool(spec.role, spec.load(self.cfg), self.cfg, sized.get(spec.role, rc.actors), rc.num_gpus, rc.num_cpus,
                    self.run_name, self.starter)  # fmt: skip

    def check_start(self, wait: bool = False) -> None:
        """Raise the first setup() failure among the starting actors; mark when all are up.
        wait=True blocks until every starting actor has loaded (or one failed)."""
        while not self._all_up:
            for r, p in self.pools.items():
                p.refresh_nodes()
                for k, err in p.setup_errors().items():
                    if k < self._initial[r] and p.slots[k].live:  # not one retired (and killed) while it loaded
                        cause = getattr(err, "cause", None) or err
                        first = (self.redact(str(cause)).strip().splitlines() or [""])[0][:300]
                        raise RuntimeError(f"roles.{r}: an actor failed to start: {type(cause).__name__}: {first}") from err
            if all(p.up(range(self._initial[r])) for r, p in self.pools.items()):
                self._all_up = True
                self.mark("pools_ready")
            elif not wait:
                return
            else:
                if self.starter is not None:
                    self.starter.pump()
                time.sleep(0.05)

    def shutdown(self) -> None:
        for p in getattr(self, "pools", {}).values():
            p.shutdown()
        self.pools = {}
        if hasattr(self, "ckpt"):
            self.ckpt.close()
