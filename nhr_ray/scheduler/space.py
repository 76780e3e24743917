"""The compact edit-job space: (image, instruction) pairs x attempts, as flat numpy arrays.

No Python object exists per job or per pair. A pair is an index p (pairs of one source are
contiguous, so `first_pair[source]` and a binary search map p back to its source and instruction).
Per pair we keep 11 bytes: its category (uint8), a bitmask of the attempts not yet issued (uint8 for
M <= 8, wider up to M = 64), a policy byte (status, streaks) and its position in its category's
queue (uint32); each category's queue is a dense uint32 array of the pairs that still have attempts.
Arrays grow by a factor of 1.0625 (amortised O(1) appends, at most 6.25 % slack).

Draws. A job is (pair, attempt bit). Within a category, the queue of L pairs spans a virtual space
of L x M slots, slot (q, b) being a job iff bit b of pair Q[q] is set. Drawing distinct slots
uniformly without replacement and keeping the valid ones in draw order is rejection sampling from
a uniform ordered sample, so it is exactly uniform without replacement over the category's jobs
(acceptance = mean remaining attempts / M, at least 1/M). Across categories a batch is split by a
multivariate hypergeometric draw on the categories' job counts, then shuffled: the batch is an
exactly uniform ordered sample of all available jobs. With category weights w the split is
multinomial with p_c proportional to w_c x jobs_c (a policy's choice, not the uniform law).
A pair whose mask empties is swap-removed from its queue; cancelling a pair does the same: O(1).
"""

from __future__ import annotations

import numpy as np

NO_POS = np.uint32(0xFFFFFFFF)
ATTEMPT_BITS = 6  # a job key is pair << 6 | attempt, so M <= 64
MAX_ATTEMPTS = 1 << ATTEMPT_BITS
GROWTH = 1.0625  # at most 6.25 % slack; each element is copied at most ~16 times, amortised


def _mask_dtype(m: int):
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if m <= np.iinfo(dt).bits:
            return np.dtype(dt)
    raise ValueError(f"at most {MAX_ATTEMPTS} attempts per pair, got {m}")


def _grown(arr: np.ndarray, need: int) -> np.ndarray:
    if need <= len(arr):
        return arr
    cap = max(need, int(len(arr) * GROWTH) + 64)
    out = np.empty(cap, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class JobSpace:
    def __init__(self, num_categories: int, max_attempts: int):
        if not 1 <= max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts per pair must be in 1..{MAX_ATTEMPTS}, got {max_attempts}")
        self.m = max_attempts
        self.mask_dtype = _mask_dtype(max_attempts)
        self.n_pairs = 0
        self.n_sources = 0
        self.cat = np.empty(0, np.uint8)
        self.mask = np.empty(0, self.mask_dtype)
        self.state = np.empty(0, np.uint8)  # owned by the scheduler's policies
        self.pos = np.empty(0, np.uint32)
        self.first_pair = np.empty(0, np.uint32)
        self.src_ids = np.empty(0, "S1")
        self.queues: list[np.ndarray] = []
        self.qlen = np.zeros(0, np.int64)
        self.jobs = np.zeros(0, np.int64)  # jobs still to issue, per category
        self.add_categories(num_categories)

    # -- growth ----------------------------------------------------------------------------
    def add_categories(self, total: int) -> None:
        while len(self.queues) < total:
            self.queues.append(np.empty(0, np.uint32))
        self.qlen = np.concatenate([self.qlen, np.zeros(total - len(self.qlen), np.int64)])
        self.jobs = np.concatenate([self.jobs, np.zeros(total - len(self.jobs), np.int64)])

    def add_sources(self, ids: list[str], counts: np.ndarray, cats: np.ndarray, masks: np.ndarray) -> None:
        """Append sources with `counts[i]` pairs each; cats/masks give every new pair in order."""
        counts = np.asarray(counts, np.int64)
        k, s = int(counts.sum()), len(ids)
        p0, s0 = self.n_pairs, self.n_sources
        if p0 + k >= int(NO_POS):
            raise ValueError("job space full (2^32 pairs)")
        enc = np.array([i.encode() for i in ids]) if ids else np.empty(0, "S1")
        if enc.dtype.itemsize > self.src_ids.dtype.itemsize:
            self.src_ids = self.src_ids.astype(enc.dtype)
        self.src_ids = _grown(self.src_ids, s0 + s)
        self.src_ids[s0 : s0 + s] = enc
        self.first_pair = _grown(self.first_pair, s0 + s)
        self.first_pair[s0 : s0 + s] = p0 + np.concatenate([[0], np.cumsum(counts)[:-1]]) if s else []
        self.n_sources += s
        for name in ("cat", "mask", "state", "pos"):
            setattr(self, name, _grown(getattr(self, name), p0 + k))
        pairs = np.arange(p0, p0 + k, dtype=np.int64)
        self.cat[p0 : p0 + k] = cats
        self.mask[p0 : p0 + k] = masks
        self.state[p0 : p0 + k] = 0
        self.n_pairs += k
        for c in np.unique(cats) if k else []:
            sel = pairs[cats == c]
            self._append(int(c), sel)
            self.jobs[c] += int(np.bitwise_count(self.mask[sel]).sum())

    def _append(self, c: int, pairs: np.ndarray) -> None:
        n = int(self.qlen[c])
        q = self.queues[c] = _grown(self.queues[c], n + len(pairs))
        q[n : n + len(pairs)] = pairs
        self.pos[pairs] = np.arange(n, n + len(pairs), dtype=np.uint32)
        self.qlen[c] = n + len(pairs)

    def nbytes(self) -> int:
        arrays = [self.cat, self.mask, self.state, self.pos, self.first_pair, self.src_ids, *self.queues]
        return int(sum(a.nbytes for a in arrays))

    # -- lookups ---------------------------------------------------------------------------
    def source_of(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source index, instruction index) of each pair."""
        src = np.searchsorted(self.first_pair[: self.n_sources], pairs, side="right") - 1
        return src, pairs - self.first_pair[src].astype(np.int64)

    @property
    def pending(self) -> int:
        return int(self.jobs.sum())

    # -- removal ---------------------------------------------------------------------------
    def _remove(self, c: int, pairs: np.ndarray) -> None:
        """Swap-remove distinct pairs (all in category c's queue) from the queue."""
        k = len(pairs)
        if not k:
            return
        n = int(self.qlen[c])
        new_n = n - k
        q = self.queues[c]
        at = self.pos[pairs].astype(np.int64)
        holes = at[at < new_n]
        in_tail = np.zeros(k, bool)
        in_tail[at[at >= new_n] - new_n] = True
        fillers = q[new_n:n][~in_tail]
        q[holes] = fillers
        self.pos[fillers] = holes
        self.pos[pairs] = NO_POS
        self.qlen[c] = new_n

    def cancel(self, pairs: np.ndarray) -> int:
        """Withdraw every attempt not yet issued of these pairs; returns how many jobs that was."""
        pairs = np.unique(np.asarray(pairs, np.int64))
        pairs = pairs[self.mask[pairs] != 0]
        if not len(pairs):
            return 0
        left = np.bitwise_count(self.mask[pairs]).astype(np.int64)
        cats = self.cat[pairs]
        for c in np.unique(cats):
            sel = cats == c
            self.jobs[c] -= int(left[sel].sum())
            self._remove(int(c), pairs[sel])
        self.mask[pairs] = 0
        return int(left.sum())

    def restore(self, pairs: np.ndarray, atts: np.ndarray) -> None:
        """Put issued jobs back (distinct, currently not pending), e.g. in-flight jobs after a restart."""
        for p, a in zip(pairs.tolist(), atts.tolist()):
            c = int(self.cat[p])
            if self.mask[p] == 0:
                self._append(c, np.array([p], np.int64))
            self.mask[p] |= self.mask_dtype.type(1 << a)
            self.jobs[c] += 1

    def _take(self, c: int, pairs: np.ndarray, bits: np.ndarray) -> None:
        """Clear the drawn attempt bits (pairs may repeat, bits distinct per pair)."""
        order = np.argsort(pairs, kind="stable")
        ps = pairs[order]
        vals = np.left_shift(np.uint64(1), bits[order].astype(np.uint64))
        uniq, start = np.unique(ps, return_index=True)
        taken = np.bitwise_or.reduceat(vals, start).astype(self.mask_dtype)
        self.mask[uniq] &= ~taken
        self.jobs[c] -= len(pairs)
        self._remove(c, uniq[self.mask[uniq] == 0])

    # -- draws -----------------------------------------------------------------------------
    def _split(self, n: int, mass: np.ndarray, weights: np.ndarray | None, rng) -> np.ndarray:
        total = int(mass.sum())
        n = min(n, total)
        if weights is None:
            return rng.multivariate_hypergeometric(mass, n)
        alloc = np.zeros(len(mass), np.int64)
        w = np.asarray(weights, float) * mass
        while n > 0 and w.sum() > 0:
            got = rng.multinomial(n, w / w.sum())
            got = np.minimum(got, mass - alloc)
            alloc += got
            n -= int(got.sum())
            w = np.where(alloc >= mass, 0.0, w)
        return alloc

    def _draw_in(self, c: int, need: int, rng) -> tuple[np.ndarray, np.ndarray]:
        outs_p, outs_b = [], []
        m = self.m
        while need > 0:
            n = int(self.qlen[c])
            slots = n * m
            mean_left = self.jobs[c] / n
            size = min(slots, int(need * m / mean_left * 1.1) + 8)
            cand = rng.choice(slots, size, replace=False)
            qi, b = np.divmod(cand, m)
            pairs = self.queues[c][qi].astype(np.int64)
            ok = (self.mask[pairs].astype(np.uint64) >> b.astype(np.uint64)) & np.uint64(1)
            idx = np.flatnonzero(ok)[:need]
            p, bb = pairs[idx], b[idx]
            self._take(c, p, bb)
            outs_p.append(p)
            outs_b.append(bb)
            need -= len(idx)
        return np.concatenate(outs_p), np.concatenate(outs_b)

    def draw_jobs(self, n: int, rng, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Up to n jobs, uniformly without replacement (weights None) or category-weighted.
        Returns (pairs, attempt indices) in draw order."""
        alloc = self._split(n, self.jobs, weights, rng)
        ps, bs = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for c in np.flatnonzero(alloc):
            p, b = self._draw_in(int(c), int(alloc[c]), rng)
            ps.append(p)
            bs.append(b)
        p, b = np.concatenate(ps), np.concatenate(bs)
        if len(ps) > 2:
            perm = rng.permutation(len(p))
            p, b = p[perm], b[perm]
        return p, b

    def draw_pairs(self, n: int, rng, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Up to n pairs uniformly without replacement (or category-weighted), each with all its
        remaining attempts. Returns (pairs, attempt indices), a pair's attempts adjacent."""
        alloc = self._split(n, self.qlen, weights, rng)
        chosen = [np.empty(0, np.int64)]
        for c in np.flatnonzero(alloc):
            n_c = int(self.qlen[c])
            at = rng.choice(n_c, int(alloc[c]), replace=False)
            pairs = self.queues[c][at].astype(np.int64)
            self.jobs[c] -= int(np.bitwise_count(self.mask[pairs]).sum())
            chosen.append(pairs)
            self._remove(int(c), pairs)
        pairs = np.concatenate(chosen)
        if len(chosen) > 2:
            pairs = pairs[rng.permutation(len(pairs))]
        bits = ((self.mask[pairs].astype(np.uint64)[:, None] >> np.arange(self.m, dtype=np.uint64)) & np.uint64(1)).astype(bool)
        self.mask[pairs] = 0
        rows, atts = np.nonzero(bits)
        return pairs[rows], atts.astype(np.int64)

    # -- persistence -----------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        n, s = self.n_pairs, self.n_sources
        out = {
            "cat": self.cat[:n], "mask": self.mask[:n], "state": self.state[:n], "pos": self.pos[:n],
            "first_pair": self.first_pair[:s], "src_ids": self.src_ids[:s], "qlen": self.qlen, "jobs": self.jobs,
        }  # fmt: skip
        for c, q in enumerate(self.queues):
            out[f"queue{c}"] = q[: self.qlen[c]]
        return out

    def load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self.n_pairs, self.n_sources = len(a["cat"]), len(a["first_pair"])
        if a["mask"].dtype != self.mask_dtype:
            raise ValueError(f"mask dtype {a['mask'].dtype} != {self.mask_dtype}")
        for name in ("cat", "mask", "state", "pos", "first_pair", "src_ids"):
            setattr(self, name, np.array(a[name]))
        self.add_categories(len(a["qlen"]))
        self.qlen = np.array(a["qlen"], np.int64)
        self.jobs = np.array(a["jobs"], np.int64)
        self.queues = [np.array(a[f"queue{c}"], np.uint32) for c in range(len(self.qlen))]
