"""Draws are exactly uniform without replacement, every job exactly once, O(1) cancel and weights."""

import numpy as np
import pytest

from nhr_ray.scheduler import JobScheduler
from nhr_ray.scheduler.space import JobSpace

CATS = ["removal", "addition", "colour_change", "replacement", "style"]


def _space(rng, sources=5, m=3, cats=3):
    sp = JobSpace(cats, m)
    counts = rng.integers(1, 4, sources)
    k = int(counts.sum())
    sp.add_sources([f"S{i:06d}.n00" for i in range(sources)], counts, rng.integers(0, cats, k).astype(np.uint8),
                   np.full(k, (1 << m) - 1, sp.mask_dtype))  # fmt: skip
    return sp


@pytest.mark.parametrize("unit", ["job", "pair"])
def test_every_job_exactly_once_while_sources_stream_in(unit):
    for seed in range(40):
        rng = np.random.default_rng(seed)
        s = JobScheduler(seed, int(rng.integers(1, 7)), unit=unit)
        expected, seen = set(), []
        for i in range(30):
            cats = [CATS[c] for c in rng.integers(0, 5, rng.integers(1, 5))]
            s.add_source(f"S{i:06d}.n{i % 3:02d}", cats)
            expected |= {f"S{i:06d}.n{i % 3:02d}.i{j}.m{a}" for j in range(len(cats)) for a in range(s.m)}
            if rng.random() < 0.5:
                seen += [j.attempt_id for j in s.draw(int(rng.integers(1, 9)))]
        while s.pending():
            seen += [j.attempt_id for j in s.draw(int(rng.integers(1, 50)))]
        assert len(seen) == len(set(seen)) == len(expected)
        assert set(seen) == expected
        assert s.draw(10) == []


def test_positions_are_uniform_chi_square():
    """Every job's position in the draw order is uniform (runs of batches of 4 with rejection)."""
    runs = 4000
    base = _space(np.random.default_rng(7), sources=4, m=3, cats=3)
    base.mask[1] = 0b101  # pairs with fewer attempts left exercise the rejection step
    base.jobs[base.cat[1]] -= 1
    jobs = [(p, b) for p in range(base.n_pairs) for b in range(3) if base.mask[p] >> b & 1]
    index = {j: i for i, j in enumerate(jobs)}
    n = len(jobs)
    counts = np.zeros((n, n))
    for r in range(runs):
        sp = JobSpace(3, 3)
        sp.load_arrays(base.arrays())
        rng = np.random.default_rng(1000 + r)
        order = []
        while sp.pending:
            p, b = sp.draw_jobs(4, rng)
            order += list(zip(p.tolist(), b.tolist()))
        for pos, j in enumerate(order):
            counts[index[j], pos] += 1
    exp = runs / n
    chi2 = ((counts - exp) ** 2 / exp).sum()
    df = (n - 1) * (n - 1)
    assert abs(chi2 - df) < 5 * np.sqrt(2 * df), (chi2, df)
    # and a draw right after new sources arrive is uniform over what is available then
    first = np.zeros(n)
    for r in range(runs):
        sp = JobSpace(3, 3)
        sp.load_arrays(base.arrays())
        p, b = sp.draw_jobs(1, np.random.default_rng(99_000 + r))
        first[index[(int(p[0]), int(b[0]))]] += 1
    chi2 = ((first - exp) ** 2 / exp).sum()
    assert chi2 < (n - 1) + 5 * np.sqrt(2 * (n - 1))


def test_cancel_and_weights():
    rng = np.random.default_rng(3)
    sp = JobSpace(2, 4)
    k = 2000
    cats = np.repeat(np.array([0, 1], np.uint8), k // 2)
    sp.add_sources([f"S{i:06d}.n00" for i in range(k // 4)], np.full(k // 4, 4), cats, np.full(k, 15, np.uint8))
    assert sp.cancel(np.array([0, 1, 1999])) == 12 and sp.pending == 4 * k - 12
    assert sp.cancel(np.array([0])) == 0
    p, _ = sp.draw_jobs(1000, rng, weights=np.array([9.0, 1.0]))
    assert not set(p.tolist()) & {0, 1, 1999}
    share0 = float(np.mean(sp.cat[p] == 0))
    assert 0.86 < share0 < 0.94  # 9:1 weights on equal masses
    p, _ = sp.draw_jobs(10 * k, rng)
    assert not set(p.tolist()) & {0, 1, 1999} and sp.pending == 0


def test_memory_is_compact():
    sp = JobSpace(5, 5)
    k = 200_000
    sp.add_sources([f"S{i:06d}.n{i % 10:02d}" for i in range(k // 4)], np.full(k // 4, 4),
                   np.random.default_rng(0).integers(0, 5, k).astype(np.uint8), np.full(k, 31, np.uint8))  # fmt: skip
    assert sp.nbytes() / k <= 16


def test_pair_draws_are_uniform_chi_square():
    runs = 3000
    base = _space(np.random.default_rng(11), sources=4, m=2, cats=3)
    n = base.n_pairs
    counts = np.zeros((n, n))
    for r in range(runs):
        sp = JobSpace(3, 2)
        sp.load_arrays(base.arrays())
        rng = np.random.default_rng(5000 + r)
        order = []
        while sp.pending:
            p, b = sp.draw_pairs(3, rng)
            assert len(p) == 2 * len(set(p.tolist()))  # whole pairs, every attempt once
            order += list(dict.fromkeys(p.tolist()))
        for pos, p in enumerate(order):
            counts[p, pos] += 1
    exp = runs / n
    chi2 = ((counts - exp) ** 2 / exp).sum()
    df = (n - 1) * (n - 1)
    assert abs(chi2 - df) < 5 * np.sqrt(2 * df), (chi2, df)
