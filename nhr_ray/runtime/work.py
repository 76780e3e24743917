"""Work in flight, as small typed records: each knows the actors it holds and how to finish itself
when its object ref is in (take the result, write and count it, or re-issue it after a lost actor).

    DesignWork   one design request on a designer
    SourceWork   a batch of source tasks: t2i, chained into the gate
    EditorSlot   an editor's part of an edit chain (the editor takes its next batch once this is in)
    ChainWork    a whole edit chain: editor -> prefilter -> low-level -> validator -> rows (CPU)

`m` is the run's Miner (runtime/driver.py): the pools, the feeders, the writers, the funnel, the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from nhr_ray.runtime.resume import policy_result, save_design
from nhr_ray.stages import table
from nhr_ray.stages.base import StageResult, Tally


@dataclass
class DesignWork:
    actor: int
    request: int

    def finish(self, ref, m) -> None:
        m.pools["designer"].done(self.actor)
        try:
            (r,) = ray.get(ref)
        except Exception as e:
            if m.retry(f"design-{self.request}", e, [("designer", self.actor)]):
                m.design_feed.submit(self.request)
                return
            n = m.cfg.task.items_per_request
            r = StageResult([], Tally("design"))
            r.tally.n_in += n
            r.tally.failed[f"error:{type(e).__name__}"] += n
        m.designs.saved[self.request] = save_design(m.store, self.request, r.tally, r.usage.get("designer", []), r.rows)
        m.count(r)
        m.designs.advance()


@dataclass
class SourceWork:
    batch: list
    actors: list[tuple[str, int]]
    reserved: Any

    def finish(self, ref, m) -> None:
        m.release(self.actors)
        m.admission.release(self.reserved)
        try:
            chain = ray.get(ref)
        except Exception as e:
            if m.retry(f"sources-{self.batch[0][0].scene_id}.{self.batch[0][1]}", e, self.actors):
                m.source_feed.submit(self.batch)
                return
            t = m.funnel.tally("sources")
            t.n_in += len(self.batch)
            t.failed[f"error:{type(e).__name__}"] += len(self.batch)
            return
        m.mark("first_sources")
        for r in chain:
            m.count(r)
            for role, seconds in r.gpu_seconds.items():
                m.scheduler.charge.remote(role, r.tally.stage, seconds)
        m.chains.pending_jobs += m.add_sources(chain[-1].rows)


@dataclass
class EditorSlot:
    actor: int

    def finish(self, ref, m) -> None:
        m.pools["editor"].done(self.actor)  # it may take the next batch; the chain goes on downstream


@dataclass
class ChainWork:
    jobs: list
    editor: int  # its slot is freed by the chain's EditorSlot
    actors: list[tuple[str, int]] = field(default_factory=list)  # downstream: judges, CPU check, rows

    def finish(self, ref, m) -> None:
        m.release(self.actors)
        m.chains.n_chains -= 1
        try:
            end = ray.get(ref)
        except Exception as e:  # an actor of the chain died
            if m.retry(f"chain-{self.jobs[0].attempt_id}", e, [("editor", self.editor), *self.actors]):
                m.chains.submit(self.jobs)
                return
            m.fail_jobs(self.jobs, f"error:{type(e).__name__}")
            return
        m.book.rows_back(m.pools["cpu"].node_of(self.actors[-1][1]), end.rows)
        for r in end.results:  # each stage's tally, API usage
            m.count(r)
        stage_role = table.stage_role()
        done = [(a.job.attempt_id, {st: (stage_role[st], s) for st, s in a.gpu_seconds.items()}, policy_result(row))
                for a, row in zip(end.attempts, end.rows)]  # GPU-seconds per attempt: the scheduler's estimate
        m.mark("first_attempts")
        m.att_writer.write(end.rows)
        m.scheduler.complete_batch.remote(done)
        for j in self.jobs:
            m.job_done(j.source_id)
