"""The runner: the streaming phase (stages 1-8) as one event loop. Each round it lets the feeders
top up their work (designs, sources, edit chains: runtime/feeders/), waits for whatever is in
flight, lets each finished work record finish itself (runtime/work.py), then ticks the pool sizing,
progress, metrics and checkpoint. It never holds the dataset: source images live in the object
store until their jobs are done, results go to storage as they come. Where the pieces live:

    the loop                          here (Miner.run)
    where work comes from             runtime/feeders/ (DesignFeeder, SourceFeeder, ChainFeeder)
    what is in flight, finishing it   runtime/work.py (DesignWork, SourceWork, EditorSlot, ChainWork)
    counting results, re-issuing      runtime/results.py
    starting pools and the scheduler  runtime/startup.py
    resume and its state formats      runtime/resume.py
    usage, locality, timeline         runtime/bookkeeping.py
    pool sizing during the run        runtime/autosize.py, runtime/elastic.py (tick(stats, waiting), close(roles))

Faults: a batch whose actor died is re-issued when its actors are back (Ray restarts them, on
another node if theirs is gone); after three losses its rows become counted failures. A failed
chain's results are never written, so nothing is lost silently and nothing completes twice.
"""

from __future__ import annotations

import collections
from typing import Any

import ray

from nhr_ray.io.shards import ATTEMPTS_SCHEMA, SOURCES_SCHEMA, ShardWriter
from nhr_ray.io.store import Store
from nhr_ray.redact import Redactor, install_log_redaction
from nhr_ray.runtime.autosize import Sizer
from nhr_ray.runtime.bookkeeping import Usage
from nhr_ray.runtime.elastic import Elastic
from nhr_ray.runtime.feeders import ChainFeeder, DesignFeeder, Designs, SourceFeeder
from nhr_ray.runtime.funnel import Funnel
from nhr_ray.runtime.metrics import RunMetrics
from nhr_ray.runtime.progress import Progress
from nhr_ray.runtime.results import Results
from nhr_ray.runtime.resume import resume
from nhr_ray.runtime.startup import Startup


__all__ = ["Miner", "Usage"]


class Miner(Startup, Results):
    """One run's streaming phase (stages 1-8). `finalize.py` does best-of, inversion, composition and
    backward consistency afterwards from what this wrote."""

    def __init__(self, cfg, store: Store, run_name: str = "nhr"):
        self.cfg = cfg
        self.store = store
        self.redact = Redactor(cfg)
        install_log_redaction(self.redact)  # the driver's log records never carry a key
        self.funnel = Funnel()
        self.usage = Usage()
        self.run_name = run_name
        self.metrics = RunMetrics(run_name)
        self.progress = Progress(cfg.output.progress)
        self.src_writer = ShardWriter(store, "sources", SOURCES_SCHEMA, cfg.output.shard_rows)
        self.att_writer = ShardWriter(store, "attempts", ATTEMPTS_SCHEMA, cfg.output.shard_rows)
        self.retried: collections.Counter = collections.Counter()
        self.reissued = 0
        self.sizer: Sizer | Elastic | None = None  # whatever changes pool sizes during the run
        self.src_bytes: dict[str, int] = {}
        self.pinned_bytes = 0  # sum of src_bytes: source images the driver keeps in the object store
        self.source_refs: dict[str, ray.ObjectRef] = {}  # sources with jobs to come, in the object store
        self.jobs_left: collections.Counter = collections.Counter()  # source id -> its jobs not done yet
        self.restored, self.known = False, set()  # resumed from the scheduler's checkpoint; sources it holds
        self.inflight: dict[ray.ObjectRef, Any] = {}  # ref -> the work record that finishes it (runtime/work.py)

    def mark(self, what: str) -> None:
        self.book.mark(what)

    def run(self) -> dict[str, Any]:
        saved, done_sources, done_attempts = resume(self)  # what the run recorded before a restart
        self.designs = Designs(self.cfg, saved, done_sources)
        self.design_feed, self.source_feed = DesignFeeder(self, self.designs), SourceFeeder(self, self.designs)
        self.chains = ChainFeeder(self, done_attempts)
        feeders = (self.design_feed, self.source_feed, self.chains)  # pipeline order
        while True:
            self.check_start()
            if self.starter is not None:
                self.starter.pump()
            for f in feeders:
                f.top_up()
            if self.finished():
                break
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
            if ready and len(self.inflight) > 1:  # take every result that is in, then top up once
                ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
            for ref in ready:
                self.inflight.pop(ref).finish(ref, self)
            self.tick()
        return self.close()

    def finished(self) -> bool:
        c = self.chains
        if self.inflight or not c.idle():
            return False
        return c.exhausted or (self.design_feed.done() and not self.source_feed.queue and c.pending_jobs == 0)

    def tick(self) -> None:
        """After each round of results: pool sizing, progress, metrics, the checkpoint's copy."""
        c = self.chains
        if self.sizer is not None:
            if self.source_feed.closed():
                self.sizer.close(("t2i", "gate"))
                if (c.exhausted or c.pending_jobs == 0) and c.idle():
                    self.sizer.close(("editor", "prefilter", "validator"))  # no chain will be submitted again
            self.sizer.tick(c.draw.stats, self.waiting())
        self.progress.update(self.funnel, c.draw.stats, c.exhausted)
        self.metrics.gauges(self.pools, c.draw.stats)
        self.ckpt.sync()

    def waiting(self) -> dict[str, float]:
        """Batches of work waiting per role, not yet on any of its actors (what elastic pools follow)."""
        src = self.source_feed.waiting()
        return {"designer": 0.0, "t2i": src, "gate": src, **self.chains.waiting()}

    def close(self) -> dict[str, Any]:
        self.mark("loop_end")
        self.src_writer.close()
        self.att_writer.close()
        self.progress.close()
        ray.get(self.scheduler.checkpoint.remote())  # final, atomic: <out>/state/scheduler.npz
        self.ckpt.sync()
        stats = ray.get(self.scheduler.stats.remote())
        stats["restored_from_checkpoint"] = self.restored
        self.metrics.gauges(self.pools, stats, force=True)
        return {"ledger": ray.get(self.scheduler.ledger.remote()), "scheduler": stats, "budget_exhausted": self.chains.exhausted,
                "usage": self.usage.as_dict(), "reissued_batches": self.reissued,
                "pools": {r: {"actors_started": p.n_asked, "gpus_per_actor": p.gpus_per_actor}
                          for r, p in self.pools.items()},
                "rebalancing": self.sizer.events if self.sizer else [],
                "locality": dict(self.book.locality), "timeline": dict(self.book.timeline),
                "source_memory": self.admission.report()}  # fmt: skip
