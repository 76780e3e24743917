"""What the Miner does with finished work (runtime/work.py calls these): count tallies and usage,
pin kept sources in the object store until their jobs are done, write sources, fail jobs that
cannot run, and re-issue a batch whose actor was lost. A mixin of the Miner."""

from __future__ import annotations

import logging

import ray

from nhr_ray.io.rows import SourceRow
from nhr_ray.records import Source

log = logging.getLogger("nhr_ray.runtime.driver")


class Results:
    MAX_REISSUES = 3

    def release(self, actors: list[tuple[str, int]]) -> None:
        for role, i in actors:
            self.pools[role].done(i)

    def retry(self, key: str, err: Exception, actors: list[tuple[str, int]]) -> bool:
        """Re-issue a batch whose actor was lost, once its actors are back (Ray restarts them,
        elsewhere if their node is gone). Results of a failed chain are never written, so a job
        completes exactly once; after MAX_REISSUES losses the batch becomes counted failures."""
        if self.retried[key] >= self.MAX_REISSUES:
            return False
        self.retried[key] += 1
        self.reissued += 1
        log.warning("re-issuing %s after %s", key, type(err).__name__)
        try:
            ray.get([ref for r, i in actors for ref in self.pools[r].setup([i])], timeout=120)
        except Exception as e:  # still down: the next try will tell
            log.warning("actors of %s not back yet: %s", key, type(e).__name__)
        return True

    def count(self, result) -> None:
        """A StageResult's tally into the funnel and metrics; its API usage into the roles' sums and metrics."""
        self.funnel.merge(result.tally)
        self.metrics.tally(result.tally)
        for role, usages in result.usage.items():
            for u in usages:
                self.usage.add(role, u)
                self.metrics.usage(role, u)

    def admit(self, s: Source) -> None:
        self.source_refs[s.source_id] = ray.put(s)
        nbytes = s.image.nbytes if s.image is not None else 0
        self.pinned_bytes += nbytes - self.src_bytes.get(s.source_id, 0)
        self.src_bytes[s.source_id] = nbytes
        self.admission.pinned(self.pinned_bytes, nbytes)
        self.jobs_left[s.source_id] += sum(self._attempts_for(i.category) for i in s.instructions)

    def add_sources(self, sources: list[Source]) -> int:
        """Write a batch's sources, pin the kept ones and queue their jobs; returns the jobs added."""
        self.src_writer.write([SourceRow.of(s, self.cfg.output.image_format).to_row() for s in sources])
        items = []
        for s in sources:
            if s.gate is not None and s.gate.keep and s.gate.stage == "gate":
                self.admit(s)
                if s.source_id not in self.known:  # made again after a restart: its jobs are queued already
                    items.append((s.source_id, [i.category for i in s.instructions]))
        if items:
            self.scheduler.add_sources.remote(items)
        for s in sources:  # jobs drawn before their source was made again (resume from a checkpoint)
            jobs = self.chains.parked.pop(s.source_id, None)
            if jobs and s.source_id in self.source_refs:
                self.chains.held.append(jobs)
            elif jobs:  # made again and not kept this time: its jobs cannot run
                self.fail_jobs(jobs, "error:source_not_kept_on_resume")
        return sum(len(c) for _, c in items) * self.cfg.edit.attempts_per_instruction

    def fail_jobs(self, jobs: list, reason: str) -> None:
        """Jobs that cannot complete: counted failures of the edit stage, done for the scheduler."""
        t = self.funnel.tally("edit")
        t.n_in += len(jobs)
        t.failed[reason] += len(jobs)
        self.metrics.verdict("edit", "failed", reason, len(jobs))
        self.scheduler.complete_batch.remote([(j.attempt_id, {}, None) for j in jobs])
        for j in jobs:
            self.job_done(j.source_id)

    def job_done(self, sid: str, n: int = 1) -> None:
        """Drop the driver's reference to a source image once all its jobs are done (or cancelled)."""
        self.jobs_left[sid] -= n
        if self.jobs_left[sid] <= 0 and sid in self.source_refs:
            del self.source_refs[sid]
            del self.jobs_left[sid]
            self.pinned_bytes -= self.src_bytes.pop(sid, 0)
