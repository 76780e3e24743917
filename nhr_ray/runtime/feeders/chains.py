"""Edit chains: jobs drawn from the scheduler -> editor -> pre-filter -> low-level (CPU) -> validator
-> rows (CPU), submitted at once as one chain of actor calls (Ray hands each link's rows to the next
as an object ref, downstream links preferring the editor's node). Editors take their next batch as
soon as their part is done; chains waiting downstream are bounded too (one more round per editor
slot), so memory stays bounded when a judge is slower than the editors.

Drawn jobs wait in `held` until an editor has room (the tail split: one drawn batch over several
chains), or in `parked` until their source is made again (after a restart)."""

from __future__ import annotations

import collections

import ray

from nhr_ray.runtime.work import ChainWork, EditorSlot
from nhr_ray.scheduler.draw import Draw
from nhr_ray.stages import table


class ChainFeeder:
    def __init__(self, m, done_attempts: set[str]):
        self.m, self.cfg = m, m.cfg
        self.done_attempts = done_attempts  # recorded before a restart: never run again
        self.per_actor = self.cfg.role("editor").max_in_flight
        self.held: collections.deque = collections.deque()  # drawn jobs waiting for an editor (tail split)
        self.parked: dict[str, list] = collections.defaultdict(list)  # drawn jobs waiting for their source
        self.n_chains = 0  # chains in flight
        self.pending_jobs, self.exhausted, self.draw = 0, False, Draw()  # the scheduler's queue, last we heard

    def busy(self) -> bool:
        return bool(self.pending_jobs or self.n_chains or self.held)

    def idle(self) -> bool:
        """Nothing drawn is waiting to run."""
        return not self.held and not self.parked

    def top_up(self) -> None:
        editors = self.m.pools["editor"]
        while editors.capacity(self.per_actor) > 0 and self.n_chains < 2 * self.per_actor * editors.n_live:
            if self.held:  # drawn jobs split over several chains (the tail): the next share
                self.submit(self.held.popleft())
                continue
            if self.exhausted or not self._draw():
                break

    def _draw(self) -> bool:
        """Draw from the scheduler into `held` (jobs whose source is not made again yet: `parked`)."""
        m = self.m
        self.draw = d = ray.get(m.scheduler.draw.remote(self._draw_size()))
        self.exhausted, self.pending_jobs = d.exhausted, d.pending
        for sid, n in d.cancelled_by_source.items():  # a policy stopped pairs
            m.job_done(sid, n)
        if not d.jobs:
            if self.pending_jobs == 0 and m.source_feed.closed():
                m.mark("all_drawn")
            return False
        m.mark("first_draw")
        todo = [j for j in d.jobs if j.attempt_id not in self.done_attempts]
        if len(todo) < len(d.jobs):  # the scheduler took the record's jobs out of its queue: never expected
            m.scheduler.skip_recorded.remote([j.attempt_id for j in d.jobs if j.attempt_id in self.done_attempts])
        for j in todo:  # after a restart, a source the scheduler holds may not be made again yet
            if j.source_id not in m.source_refs:
                self.parked[j.source_id].append(j)
        todo = [j for j in todo if j.source_id in m.source_refs]
        if todo:
            self.held.extend([todo] if m.sizer is None else tail_chunks(todo, self.pending_jobs, m.pools["editor"].n_live))
        return True

    def _draw_size(self) -> int:
        """scheduler.batch_size; with pools sized by the run (autosize/elastic), smaller once the queue
        runs short, so the last jobs spread over every editor instead of queueing behind a few big
        batches (a shorter tail)."""
        n = self.cfg.scheduler.batch_size
        if self.m.sizer is None or self.pending_jobs <= 0:
            return n
        per = self.cfg.edit.attempts_per_instruction if self.cfg.scheduler.unit == "pair" else 1
        share = -(-self.pending_jobs // (per * 2 * max(self.m.pools["editor"].n_live, 1)))  # two rounds per editor
        return max(1, min(n, share))

    def submit(self, jobs: list) -> None:
        m, pools = self.m, self.m.pools
        srcs = {j.source_id: m.source_refs[j.source_id] for j in jobs}
        editor, ref = pools["editor"].run(jobs, srcs)
        m.inflight[ref] = EditorSlot(editor)  # the editor's slot frees when its part is done, not the chain's
        node = pools["editor"].node_of(editor)
        used = []
        for s in table.attempt_stages()[1:]:  # downstream stages prefer the editor's node
            i, ref = pools[s.role].run_after(ref, srcs, node=node)
            used.append((s.role, i))
        # rows (and PNG encoding) on a CPU actor: the driver gets rows, not edited images
        k, ref = pools["cpu"].attempt_rows(ref, self.cfg.output.image_format, self.cfg.output.attempt_images, node=node)
        m.inflight[ref] = ChainWork(jobs, editor, used + [("cpu", k)])
        self.n_chains += 1
        sb = sum(m.src_bytes.get(s, 0) for s in srcs)
        eb = sum(m.src_bytes.get(j.source_id, 0) for j in jobs)  # an edit is the size of its source
        nodes = [node] + [pools[r].node_of(i) for r, i in used]
        m.book.chain(nodes, pools["cpu"].node_of(k), sb, eb, len(jobs))

    def waiting(self) -> dict[str, float]:
        """Batches waiting per role of the chain, not yet on any of its actors (what elastic pools
        follow). The editor's: the jobs the budget can still pay for (Draw.waiting_jobs)."""
        past_editor = max(0, self.n_chains - self.m.pools["editor"].total_load)  # chains at a judge or the CPU check
        return {"editor": self.draw.waiting_jobs(self.pending_jobs) / self.cfg.scheduler.batch_size,
                "prefilter": past_editor, "validator": past_editor}


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
