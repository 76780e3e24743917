"""Work in flight, as small typed records: each knows the actors it holds and how to finish itself
when its object ref is in (take the result, write and count it, or re-issue it after a lost actor).

    DesignWork   one design request on a designer
    SourceWork   a batch of source tasks: t2i, chained into the gate
    EditorSlot   an editor's part of an edit chain (the editor takes its next batch once this is in)
    ChainWork    a whole edit chain: editor -> prefilter -> low-level -> validator -> rows (CPU)

`m` is the run's Miner (runtime/driver.py): the pools, the writers, the funnel, the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from nhr_ray.runtime.resume import policy_result, save_design
from nhr_ray.stages import table
from nhr_ray.stages.base import Tally


@dataclass
class DesignWork:
    actor: int
    request: int

    def finish(self, ref, m) -> None:
        m.pools["designer"].done(self.actor)
        try:
            scenes, tally, usage = ray.get(ref)
        except Exception as e:
            if m.retry(f"design-{self.request}", e, [("designer", self.actor)]):
                m.submit_design(self.request)
                return
            n = m.cfg.task.items_per_request
            tally, scenes, usage = Tally("design"), [], []
            tally.n_in += n
            tally.failed[f"error:{type(e).__name__}"] += n
        m.designs.saved[self.request] = save_design(m.store, self.request, tally, usage, scenes)
        m.count(tally, "designer", usage)
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
            (sources, t_src, c_src), (sources, t_gate, c_gate) = ray.get(ref)
        except Exception as e:
            if m.retry(f"sources-{self.batch[0][0].scene_id}.{self.batch[0][1]}", e, self.actors):
                m.submit_sources(self.batch)
                return
            t = m.funnel.tally("sources")
            t.n_in += len(self.batch)
            t.failed[f"error:{type(e).__name__}"] += len(self.batch)
            return
        m.mark("first_sources")
        m.count(t_src)
        m.count(t_gate)
        m.scheduler.charge.remote("t2i", "sources", c_src)
        m.scheduler.charge.remote("gate", "gate", c_gate)
        m.pending_jobs += m.add_sources(sources)


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
        m.n_chains -= 1
        try:
            attempts, rows = ray.get(ref)
        except Exception as e:  # an actor of the chain died
            if m.retry(f"chain-{self.jobs[0].attempt_id}", e, [("editor", self.editor), *self.actors]):
                m.submit_chain(self.jobs)
                return
            m.fail_jobs(self.jobs, f"error:{type(e).__name__}")
            return
        m.book.rows_back(m.pools["cpu"].node[self.actors[-1][1]], rows)
        done, stage_role = [], table.stage_role()
        for a, row in zip(attempts, rows):
            m.funnel.add_attempt_verdicts(a.verdicts)
            for v in a.verdicts:
                m.metrics.verdict(v.stage, v.outcome, v.reason)
            if a.usage:
                m.count(None, "validator", [a.usage])
            costs = {st: (stage_role[st], s) for st, s in a.gpu_seconds.items()}
            done.append((a.job.attempt_id, costs, policy_result(row)))
        m.mark("first_attempts")
        m.att_writer.write(rows)
        m.scheduler.complete_batch.remote(done)
        for j in self.jobs:
            m.job_done(j.source_id)
