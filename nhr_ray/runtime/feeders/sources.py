"""Source tasks -> t2i, chained into the gate (sources are cheap and feed the queue: they go first).
Paused while the pinned source images or the jobs not yet drawn pass sources.max_pinned_bytes /
max_pending_jobs (runtime/admission.py)."""

from __future__ import annotations

import itertools

from nhr_ray.runtime.work import SourceWork


class SourceFeeder:
    def __init__(self, m, designs):
        self.m, self.designs = m, designs
        self.queue = designs.source_queue  # source tasks not submitted yet, in request order
        self.per_actor = {r: m.cfg.role(r).max_in_flight for r in ("t2i", "gate")}

    def in_flight(self) -> int:
        return sum(1 for w in self.m.inflight.values() if isinstance(w, SourceWork))

    def top_up(self) -> None:
        m, q = self.m, self.queue
        while q and not m.chains.exhausted and m.pools["t2i"].capacity(self.per_actor["t2i"]) > 0 \
                and m.pools["gate"].capacity(self.per_actor["gate"]) > 0:  # fmt: skip
            batch = list(itertools.islice(q, m.cfg.sources.batch_size))
            if not m.admission.allow(batch, m.pinned_bytes, m.chains.pending_jobs, m.chains.busy()):
                break
            for _ in batch:
                q.popleft()
            self.submit(batch)

    def submit(self, batch: list) -> None:
        m = self.m
        i, t2i_ref = m.pools["t2i"].run(batch)
        j, ref = m.pools["gate"].run_after(t2i_ref)
        m.inflight[ref] = SourceWork(batch, [("t2i", i), ("gate", j)], m.admission.reserve(batch, m.pinned_bytes))

    def closed(self) -> bool:
        """No source will be made any more (bar a re-issue)."""
        return self.m.design_feed.done() and not self.queue and not self.in_flight()

    def waiting(self) -> float:
        """Source batches waiting for t2i (none while admission holds them back on purpose)."""
        return 0.0 if self.m.admission.paused else len(self.queue) / self.m.cfg.sources.batch_size
