"""SIMULATION, for tests, benchmarks and a simulated run's manifest only (no stage and no judge calls it): the truth about what the
simulation made, read from the final images and words (perceive.py and quality.py, without a judge's
error) and from the world's own draws (how hard a pair is). A triplet is truly good when a careful
human would score it above 4.0 on both axes (the paper's positive class)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from nhr_ray.backends.sim import quality as Q
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.perceive import perceive
from nhr_ray.io.images import decode

MAX_PIXELS = 64_000_000


def true_outcome(source: bytes, edited: bytes, instruction: str) -> str:
    """What the edit truly is (clean, partial, wrong_object, ...), from the encoded images."""
    return perceive(decode(source, MAX_PIXELS), decode(edited, MAX_PIXELS), instruction).outcome


def true_scores(source: bytes, edited: bytes, instruction: str) -> tuple[float, float]:
    """(adherence, aesthetics) a careful human gives the triplet, from the encoded images."""
    src, out = decode(source, MAX_PIXELS), decode(edited, MAX_PIXELS)
    p, lat = perceive(src, out, instruction), Q.latents(src, out, instruction)
    adh, aes = Q.true_quality(p.done, p.outside, p.specks, p.feasible, *lat.finish, lat.picture)
    return float(adh), float(aes)


def truly_good(source: bytes, edited: bytes, instruction: str) -> bool:
    adh, aes = true_scores(source, edited, instruction)
    return adh > Q.HUMAN_POSITIVE and aes > Q.HUMAN_POSITIVE


def pair_q(run_seed: int, sim, pair_id: str, category: str) -> float:
    """The world's per-attempt clean probability of a feasible (image, instruction) pair."""
    cat = {"removal_all": "removal", "other": "addition"}.get(category, category)
    return W.beta_pair_q(run_seed, pair_id, cat, sim.pair_success_mean, sim.pair_concentration, sim.category_difficulty)


def kept_precision(rows) -> dict[str, float | None]:
    """Share of final triplets (rows with kind, source_image, edited_image, edit_instruction) that are
    truly good (a careful human scores both axes above 4.0), by kind and overall: the honest
    precision of a simulated run's kept set."""
    by_kind: dict[str, list[bool]] = {}
    for r in rows:
        ok = truly_good(r["source_image"]["bytes"], r["edited_image"]["bytes"], r["edit_instruction"])
        by_kind.setdefault(r["kind"], []).append(ok)
    out: dict[str, float | None] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}
    every = [x for v in by_kind.values() for x in v]
    out["all"] = round(sum(every) / len(every), 4) if every else None
    return out


TRIPLET_COLUMNS = ["kind", "source_image", "edited_image", "edit_instruction"]


def run_precision(run_dir: str | Path) -> dict[str, float | None]:
    """kept_precision of a run folder's triplets."""
    def rows():
        for f in sorted(Path(run_dir, "data").glob("triplets-*.parquet")):
            for b in pq.ParquetFile(f).iter_batches(64, columns=TRIPLET_COLUMNS):
                yield from b.to_pylist()

    return kept_precision(rows())
