"""The driver: streams scenes -> sources -> gate -> edit jobs through the role pools (stages 1-8).

Every batch of work is a chain of actor calls submitted at once (Ray passes each stage's rows to the
next as object refs), so no actor waits on the driver between stages. The driver only tops up the
work (designs, source batches, edit chains), writes finished rows to Parquet shards and feeds the
scheduler; it never holds the dataset: source images live in the object store until their jobs
are done, results go to storage as they come. Where the pieces live:

    the loop, top-ups, submitting     here (Miner.run)
    what is in flight, finishing it   runtime/work.py (DesignWork, SourceWork, EditorSlot, ChainWork)
    designs -> source tasks           runtime/feeders.py
    resume and its state formats      runtime/resume.py
    usage, locality, timeline         runtime/bookkeeping.py
    pool sizing during the run        runtime/autosize.py, runtime/elastic.py (PoolControl: tick, close)

Faults: a batch whose actor died is re-issued when its actors are back (Ray restarts them, on
another node if theirs is gone); after three losses its rows become counted failures. A failed
chain's results are never written, so nothing is lost silently and nothing completes twice.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any

import ray

from nhr_ray.io.shards import ATTEMPTS_SCHEMA, SOURCES_SCHEMA, ShardWriter
from nhr_ray.io.store import Store
from nhr_ray.redact import Redactor, install_log_redaction
from nhr_ray.runtime.autosize import Sizer
from nhr_ray.runtime.bookkeeping import Usage
from nhr_ray.runtime.elastic import Elastic
from nhr_ray.runtime.feeders import Designs
from nhr_ray.runtime.funnel import Funnel
from nhr_ray.runtime.metrics import RunMetrics
from nhr_ray.runtime.progress import Progress
from nhr_ray.runtime.results import Results
from nhr_ray.runtime.resume import resume
from nhr_ray.runtime.startup import Startup
from nhr_ray.runtime.work import ChainWork, DesignWork, EditorSlot, SourceWork
from nhr_ray.scheduler.draw import Draw
from nhr_ray.stages import table


__all__ = ["Miner", "Usage", "tail_chunks"]


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
        self.n_chains = 0
        self.restored, self.known = False, set()  # resumed from the scheduler's checkpoint; sources it holds
        self.held: collections.deque = collections.deque()  # drawn jobs waiting for an editor (tail split)
        self.parked: dict[str, list] = collections.defaultdict(list)  # drawn jobs waiting for their source
        self.inflight: dict[ray.ObjectRef, Any] = {}  # ref -> the work record that finishes it (runtime/work.py)
        self.pending_jobs, self.exhausted, self.draw = 0, False, Draw()  # the scheduler's queue, last we heard

    def mark(self, what: str) -> None:
        self.book.mark(what)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        saved, done_sources, self.done_attempts = resume(self)  # what the run recorded before a restart
        self.designs = Designs(self.cfg, saved, done_sources)
        self.per_actor = {s.role: 4 if s.placement == "cpu" else self.cfg.role(s.role).max_in_flight
                          for s in table.stages("stream")}  # fmt: skip
        while True:
            self.check_start()
            if self.starter is not None:
                self.starter.pump()
            self.top_up_designs()
            self.top_up_sources()
            self.top_up_chains()
            if self.finished():
                break
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
            if ready and len(self.inflight) > 1:  # take every result that is in, then top up once
                ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
            for ref in ready:
                self.inflight.pop(ref).finish(ref, self)
            self.tick()
        return self.close()

    def _count_in_flight(self, *kinds) -> int:
        return sum(1 for w in self.inflight.values() if isinstance(w, kinds))

    def top_up_designs(self) -> None:
        """Design, in request order, until enough scenes (re-asking for what was lost)."""
        d = self.designs
        while self.pools["designer"].capacity(self.per_actor["designer"]) > 0 and not self.exhausted \
                and d.wanted(self._count_in_flight(DesignWork)):  # fmt: skip
            req = d.take()
            if req is not None:
                self.submit_design(req)

    def top_up_sources(self) -> None:
        """Sources first (cheap, and they feed the queue), chained into the gate; paused while the
        pinned sources or the jobs not yet drawn pass sources.max_pinned_bytes / max_pending_jobs
        (runtime/admission.py)."""
        q = self.designs.source_queue
        while q and not self.exhausted and self.pools["t2i"].capacity(self.per_actor["t2i"]) > 0 \
                and self.pools["gate"].capacity(self.per_actor["gate"]) > 0:  # fmt: skip
            batch = list(itertools.islice(q, self.cfg.sources.batch_size))
            busy = bool(self.pending_jobs or self.n_chains or self.held)
            if not self.admission.allow(batch, self.pinned_bytes, self.pending_jobs, busy):
                break
            for _ in batch:
                q.popleft()
            self.submit_sources(batch)

    def top_up_chains(self) -> None:
        """Edit chains: editor -> prefilter -> low-level (CPU) -> validator. Editors take their next
        batch as soon as their part of a chain is done; chains waiting downstream are bounded too (one
        more round per editor slot), so memory stays bounded when a judge is slower than the editors."""
        editors, per = self.pools["editor"], self.per_actor["editor"]
        while editors.capacity(per) > 0 and self.n_chains < 2 * per * editors.n_live:
            if self.held:  # drawn jobs split over several chains (the tail): the next share
                self.submit_chain(self.held.popleft())
                continue
            if self.exhausted or not self._draw_jobs():
                break

    def _draw_jobs(self) -> bool:
        """Draw from the scheduler into `held` (jobs whose source is not made again yet: `parked`)."""
        self.draw = d = ray.get(self.scheduler.draw.remote(self._draw_size(self.pending_jobs)))
        self.exhausted, self.pending_jobs = d.exhausted, d.pending
        for sid, n in d.cancelled_by_source.items():  # a policy stopped pairs
            self.job_done(sid, n)
        if not d.jobs:
            if self.pending_jobs == 0 and self._sources_closed():
                self.mark("all_drawn")
            return False
        self.mark("first_draw")
        todo = [j for j in d.jobs if j.attempt_id not in self.done_attempts]
        if len(todo) < len(d.jobs):  # the scheduler took the record's jobs out of its queue: never expected
            self.scheduler.skip_recorded.remote([j.attempt_id for j in d.jobs if j.attempt_id in self.done_attempts])
        for j in todo:  # after a restart, a source the scheduler holds may not be made again yet
            if j.source_id not in self.source_refs:
                self.parked[j.source_id].append(j)
        todo = [j for j in todo if j.source_id in self.source_refs]
        self.held.extend(self._tail_split(todo, self.pending_jobs))
        return True

    def _design_done(self) -> bool:
        return self.designs.asked_all() and not self._count_in_flight(DesignWork)

    def _sources_closed(self) -> bool:
        """No source will be made any more (bar a re-issue)."""
        return self._design_done() and not self.designs.source_queue and not self._count_in_flight(SourceWork)

    def finished(self) -> bool:
        if self.inflight or self.held or self.parked:
            return False
        return self.exhausted or (self._design_done() and not self.designs.source_queue and self.pending_jobs == 0)

    def tick(self) -> None:
        """After each round of results: pool sizing, progress, metrics, the checkpoint's copy."""
        if self.sizer is not None:
            if self._sources_closed():
                self.sizer.close(("t2i", "gate"))
                if (self.exhausted or self.pending_jobs == 0) and not self.held and not self.parked:
                    self.sizer.close(("editor", "prefilter", "validator"))  # no chain will be submitted again
            self.sizer.tick(self.draw.stats, self._waiting(self.draw.waiting_jobs(self.pending_jobs)))
        self.progress.update(self.funnel, self.draw.stats, self.exhausted)
        self.metrics.gauges(self.pools, self.draw.stats)
        self.ckpt.sync()

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
        return {"ledger": ray.get(self.scheduler.ledger.remote()), "scheduler": stats, "budget_exhausted": self.exhausted,
                "usage": self.usage.as_dict(), "reissued_batches": self.reissued,
                "pools": {r: {"actors_started": len(p.actors), "gpus_per_actor": p.gpus_per_actor}
                          for r, p in self.pools.items()},
                "rebalancing": self.sizer.events if self.sizer else [],
                "locality": dict(self.book.locality), "timeline": dict(self.book.timeline),
                "source_memory": self.admission.report()}  # fmt: skip

    def _waiting(self, jobs: float) -> dict[str, float]:
        """Batches of work waiting per role, not yet on any of its actors (what elastic pools follow).
        The editor's: `jobs`, those the budget can still pay for (Draw.waiting_jobs)."""
        cfg = self.cfg
        src = 0.0 if self.admission.paused else len(self.designs.source_queue) / cfg.sources.batch_size  # paused on purpose
        past_editor = max(0, self.n_chains - sum(self.pools["editor"].load))  # chains at a judge or the CPU check
        return {"designer": 0.0, "t2i": src, "gate": src, "editor": jobs / cfg.scheduler.batch_size,
                "prefilter": past_editor, "validator": past_editor}
    def _tail_split(self, jobs: list, pending_jobs: int) -> list[list]:
        """With pools sized by the run (autosize/elastic), once the jobs left fit in two rounds of the
        live editors, split a drawn batch (a pair's M attempts run as one editor call otherwise) so
        the last attempts spread over every editor instead of queueing on a few: a shorter tail.
        Attempts are independent (own seed each), so the split changes where they run, not what they give."""
        if self.sizer is None:
            return [jobs] if jobs else []
        return tail_chunks(jobs, pending_jobs, self.pools["editor"].n_live)

    def _draw_size(self, pending_jobs: int) -> int:
        """scheduler.batch_size; with autosize, smaller once the queue runs short, so the last jobs
        spread over every editor instead of queueing behind a few big batches (a shorter tail)."""
        n = self.cfg.scheduler.batch_size
        if self.sizer is None or pending_jobs <= 0:
            return n
        per = self.cfg.edit.attempts_per_instruction if self.cfg.scheduler.unit == "pair" else 1
        share = -(-pending_jobs // (per * 2 * max(self.pools["editor"].n_live, 1)))  # two rounds per editor
        return max(1, min(n, share))

    # -- submitting ----------------------------------------------------------------------------
    def submit_design(self, req: int) -> None:
        i, ref = self.pools["designer"].process([req])
        self.inflight[ref] = DesignWork(i, req)

    def submit_sources(self, batch) -> None:
        i, t2i_ref = self.pools["t2i"].process(batch)
        j, ref = self.pools["gate"].process_then(t2i_ref)
        self.inflight[ref] = SourceWork(batch, [("t2i", i), ("gate", j)], self.admission.reserve(batch, self.pinned_bytes))

    def submit_chain(self, jobs) -> None:
        srcs = {j.source_id: self.source_refs[j.source_id] for j in jobs}
        editor, ref = self.pools["editor"].process_rows(jobs, srcs)
        self.inflight[ref] = EditorSlot(editor)  # the editor's slot frees when its part is done, not the chain's
        node = self.pools["editor"].node[editor]
        used = []
        for role in [s.role for s in table.attempt_stages()][1:]:  # downstream stages prefer the editor's node
            i, ref = self.pools[role].process_rows(ref, srcs, node=node)
            used.append((role, i))
        # rows (and PNG encoding) on a CPU actor: the driver gets rows, not edited images
        k, ref = self.pools["cpu"].attempt_rows(ref, self.cfg.output.image_format, self.cfg.output.attempt_images, node=node)
        self.inflight[ref] = ChainWork(jobs, editor, used + [("cpu", k)])
        self.n_chains += 1
        sb = sum(self.src_bytes.get(s, 0) for s in srcs)
        eb = sum(self.src_bytes.get(j.source_id, 0) for j in jobs)  # an edit is the size of its source
        nodes = [self.pools["editor"].node[editor]] + [self.pools[r].node[i] for r, i in used]
        self.book.chain(nodes, self.pools["cpu"].node[k], sb, eb, len(jobs))

def tail_chunks(jobs: list, pending_jobs: int, editors: int) -> list[list]:
    """One chain of all `jobs`, unless the jobs left (drawn now + still pending) fit in two rounds
    of `editors`: then chains of ceil(left / (2 x editors)) jobs, so the last ones spread out."""
    if not jobs:
        return []
    editors = max(editors, 1)
    left = pending_jobs + len(jobs)
    if left >= 2 * editors * len(jobs):
        return [jobs]
    size = max(1, -(-left // (2 * editors)))
    return [jobs[k : k + size] for k in range(0, len(jobs), size)]

