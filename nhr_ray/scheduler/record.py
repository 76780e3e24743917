"""Reconciling the scheduler's queue with the run's record (attempts-*.parquet) after a restart,
whether the queue was restored from a checkpoint or rebuilt from the record: jobs the record holds
leave the queue (paid, shown to the policy, never measured), jobs a checkpoint counted but the record
lacks go back. A job the record holds is never drawn again."""

from __future__ import annotations

from typing import Any

import numpy as np

from nhr_ray.scheduler.policies import ACTIVE
from nhr_ray.scheduler.space import ATTEMPT_BITS


class RecordMixin:
    """JobScheduler's methods for resuming (it owns space, policy, ledger and counters)."""

    def _key(self, attempt: str | int, lookup: dict[str, int] | None = None) -> int | None:
        """The job key of an attempt id. Sources are looked up among those with jobs in flight
        (rebuilt when missing: amortised O(1)), or in `lookup` when one is given."""
        if isinstance(attempt, (int, np.integer)):
            return int(attempt)
        pid, _, att = attempt.rpartition(".m")
        src, _, inst = pid.rpartition(".i")
        if lookup is None:
            if src not in self._src_lookup:
                pairs = np.fromiter(self.inflight.keys(), np.int64, len(self.inflight)) >> ATTEMPT_BITS
                s, _ = self.space.source_of(np.unique(pairs))
                s = np.unique(s)
                self._src_lookup = dict(zip((x.decode() for x in self.space.src_ids[s].tolist()), s.tolist()))
            lookup = self._src_lookup
        if src not in lookup:
            return None
        i = lookup[src]
        return ((int(self.space.first_pair[i]) + int(inst)) << ATTEMPT_BITS) | int(att)

    def resume_done(self, items: list[tuple]) -> dict[str, int]:
        """Attempts the run's record shows finished: (attempt id, costs[, result]), in record order,
        after load() or on a queue rebuilt from the record. One the queue still holds leaves it and
        counts as done: its cost is paid, its result shown to the policy, nothing measured. After
        load(), one the queue does not hold was counted by the checkpoint. One whose source is not
        in the queue yet is paid now and leaves the queue when add_sources brings its source."""
        out = {"taken": 0, "counted_before": 0, "unknown": 0}
        if self._resume_index is None:  # every source, not only those with jobs in flight; kept for
            n = self.space.n_sources    # the record's later chunks, dropped by requeue_unrecorded
            self._resume_index = {x.decode(): i for i, x in enumerate(self.space.src_ids[:n].tolist())}
        for attempt, costs, *rest in items:
            result = rest[0] if rest else None
            key = self._key(attempt, self._resume_index)
            if key is None:
                pid, _, att = str(attempt).rpartition(".m")
                src, _, inst = pid.rpartition(".i")
                self._recorded_later.setdefault(src, []).append((int(inst), int(att), result))
                self._pay(costs)
                out["unknown"] += 1
                continue
            self._recorded.add(key)
            if not (int(self.space.mask[key >> ATTEMPT_BITS]) >> (key & ((1 << ATTEMPT_BITS) - 1))) & 1:
                out["counted_before"] += 1
                continue
            self.done_cost += self._pay(costs)
            self._take_recorded(key, result)
            out["taken"] += 1
        return out

    def _take_recorded(self, key: int, result: dict[str, Any] | None) -> None:
        """A job the record holds leaves the queue, done (no-op when it is not queued)."""
        pair, att = key >> ATTEMPT_BITS, key & ((1 << ATTEMPT_BITS) - 1)
        if not (int(self.space.mask[pair]) >> att) & 1:
            return
        cat = int(self.space.cat[pair])
        self.space._take(cat, np.array([pair], np.int64), np.array([att], np.int64))
        self.c["issued"] += 1
        self.c["done_jobs"] += 1
        self.c["taken_from_record"] += 1
        self.cat_stats["issued"][cat] += 1
        self.cat_stats["completed"][cat] += 1
        self._show_result(pair, cat, result)

    def requeue_unrecorded(self) -> int:
        """After load() and resume_done(): jobs the checkpoint counted as finished but the run's
        record lacks (their rows were still buffered when the run died) go back to the queue, to be
        done again; their first cost stays in the ledger (it was spent). Returns how many."""
        rec = np.fromiter(self._recorded, np.int64, len(self._recorded))
        self._recorded, self._resume_index = set(), None
        n = self.space.n_pairs
        if not n:
            return 0
        full = self._full_masks()
        active = (self.space.state[:n] & 7) == ACTIVE
        issued = full[self.space.cat[:n]] & ~self.space.mask[:n].astype(np.uint64)
        have = np.zeros(n, np.uint64)
        np.bitwise_or.at(have, rec >> ATTEMPT_BITS, np.left_shift(np.uint64(1), (rec & ((1 << ATTEMPT_BITS) - 1)).astype(np.uint64)))
        lost = np.where(active, issued & ~have, np.uint64(0))
        lp, la = [], []
        for p in np.flatnonzero(lost).tolist():
            bits = int(lost[p])
            for a in range(bits.bit_length()):
                if bits >> a & 1:
                    lp.append(p)
                    la.append(a)
        if lp:
            lp_a, la_a = np.array(lp, np.int64), np.array(la, np.int64)
            self.space.restore(lp_a, la_a)
            self.c["done_jobs"] -= len(lp)
            self.c["issued"] -= len(lp)
            np.subtract.at(self.cat_stats["issued"], self.space.cat[lp_a], 1)
            np.subtract.at(self.cat_stats["completed"], self.space.cat[lp_a], 1)
            self.c["redone_unrecorded"] += len(lp)
        return len(lp)

    def _take_later(self, source_ids: list[str], categories: list[list[str]]) -> None:
        """Sources just added (the last len(source_ids)): their jobs resume_done held back leave the queue."""
        first = self.space.n_sources - len(source_ids)
        for sid in [x for x in source_ids if x in self._recorded_later]:
            i = first + source_ids.index(sid)
            for inst, att, result in self._recorded_later.pop(sid):
                if inst < len(categories[i - first]) and att < 1 << ATTEMPT_BITS:
                    self._take_recorded(((int(self.space.first_pair[i]) + inst) << ATTEMPT_BITS) | att, result)

    def skip_recorded(self, attempts: list[str | int]) -> None:
        """Drawn jobs the caller found in the run's record: out of flight, counted, never measured
        and never paid (their cost was paid when the record was read back)."""
        for attempt in attempts:
            key = self._key(attempt)
            est = self.inflight.pop(key, None) if key is not None else None
            if est is not None:
                self.inflight_s -= est
                self.c["done_jobs"] += 1
                self.cat_stats["completed"][int(self.space.cat[key >> ATTEMPT_BITS])] += 1
            self.c["drawn_again_recorded"] += 1
