"""Stage 2: source images. N seeds per scene prompt, one aspect bucket per image by a seeded draw;
requests of one bucket are batched together."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache

import numpy as np

from nhr_ray.config import PAPER_BUCKETS
from nhr_ray.records import Scene, Source, Verdict, item_rng, item_seed, source_id
from nhr_ray.roles import T2IRequest
from nhr_ray.stages.base import Stage, StageResult, Tally, error_verdict


# SPEC.md stage 2 (paper Table 8): edits per bucket in NHR-Edit, in PAPER_BUCKETS' order.
PAPER_BUCKET_EDITS = [
    369, 2497, 5752, 7857, 11931, 15087, 21838, 16203, 18807, 21559, 21256, 20951, 23137, 22186, 23006,
    19934, 18021, 19070, 20557, 16941, 10564, 7848, 3706, 5872, 3103, 411,
]  # fmt: skip


def bucket_label(w: int, h: int) -> str:
    return f"{w}x{h}"


def bucket_weights(buckets: list[tuple[int, int]], draw: str) -> np.ndarray:
    return _weights(tuple(map(tuple, buckets)), draw).copy()


@lru_cache(maxsize=8)  # keyed by the (immutable) bucket list: per-process, recomputable, not shared state
def _weights(buckets: tuple[tuple[int, int], ...], draw: str) -> np.ndarray:
    """Probability of each configured bucket. 'uniform': equal. 'paper': its NHR-Edit frequency; a
    bucket that is not one of the paper's takes the frequency of the paper bucket nearest in aspect
    ratio (so scaled-down or custom bucket lists keep the paper's near-square-heavy mix)."""
    if draw == "uniform":
        return np.full(len(buckets), 1.0 / len(buckets))
    paper = dict(zip(PAPER_BUCKETS, PAPER_BUCKET_EDITS))
    logr = [(math.log(pw / ph), n) for (pw, ph), n in paper.items()]
    w = np.array([paper.get((bw, bh)) or min(logr, key=lambda t: abs(t[0] - math.log(bw / bh)))[1]
                  for bw, bh in buckets], dtype=float)  # fmt: skip
    return w / w.sum()


def choose_bucket(run_seed: int, sid: str, sources) -> tuple[tuple[int, int], tuple[int, int]]:
    """-> (the configured bucket drawn for this image, its size after sources.scale)."""
    p = _weights(tuple(map(tuple, sources.buckets)), sources.bucket_draw)
    w, h = sources.buckets[int(item_rng(run_seed, sid, "bucket").choice(len(p), p=p))]
    return (w, h), scaled_size(w, h, sources.scale)


def scaled_size(w: int, h: int, scale: float) -> tuple[int, int]:
    """A bucket's image size under sources.scale (rounded down to 16 px, at least 16)."""
    return max(16, int(w * scale) // 16 * 16), max(16, int(h * scale) // 16 * 16)


def source_tasks(scene: Scene, seeds_per_prompt: int) -> list[tuple[Scene, int]]:
    return [(scene, n) for n in range(seeds_per_prompt)]


class SourceStage(Stage):
    name = "sources"
    role = "t2i"

    def process(self, tasks: list[tuple[Scene, int]]) -> StageResult:
        cfg = self.config
        by_bucket: dict[tuple[int, int], list[T2IRequest]] = defaultdict(list)
        scenes, tally = {}, Tally(self.name)
        for scene, n in tasks:
            sid = source_id(scene.scene_id, n)
            bucket, (w, h) = choose_bucket(cfg.seed, sid, cfg.sources)
            tally.notes[f"bucket:{bucket_label(*bucket)}"] += 1  # the drawn mix, shown in the funnel and report
            by_bucket[(w, h)].append(T2IRequest(sid, scene.prompt, item_seed(cfg.seed, sid, "t2i"), w, h))
            scenes[sid] = scene
        out, cost = [], 0.0
        for reqs in by_bucket.values():
            for ans, r in zip(self.backend.generate(reqs), reqs):
                scene = scenes[r.item_id]
                src = Source(r.item_id, scene.scene_id, scene.prompt, r.seed, r.width, r.height, ans.image,
                             style=scene.style, instructions=scene.instructions)
                if ans.error or ans.image is None:
                    v = error_verdict(self.name, ans.error or "no_image")
                elif ans.image.shape[:2] != (r.height, r.width):
                    v = Verdict(self.name, False, "wrong_size", raw=f"{ans.image.shape[1]}x{ans.image.shape[0]}")
                else:
                    v = Verdict(self.name, True, "ok")
                src.gate = v if not v.keep else None
                tally.add(v)
                cost += ans.gpu_seconds
                src.gpu_seconds = ans.gpu_seconds
                out.append(src)
        return self.result(out, tally, cost)
