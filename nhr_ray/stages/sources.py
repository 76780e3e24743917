"""Stage 2: source images. N seeds per scene prompt, one aspect bucket per image by a seeded draw;
requests of one bucket are batched together."""

from __future__ import annotations

from collections import defaultdict

from nhr_ray.records import Scene, Source, Verdict, item_rng, item_seed, source_id
from nhr_ray.roles import T2IRequest
from nhr_ray.stages.base import Stage, Tally, error_verdict


def choose_bucket(run_seed: int, sid: str, buckets: list[tuple[int, int]], scale: float) -> tuple[int, int]:
    w, h = buckets[int(item_rng(run_seed, sid, "bucket").integers(0, len(buckets)))]
    return max(16, int(w * scale) // 16 * 16), max(16, int(h * scale) // 16 * 16)


def source_tasks(scene: Scene, seeds_per_prompt: int) -> list[tuple[Scene, int]]:
    return [(scene, n) for n in range(seeds_per_prompt)]


class SourceStage(Stage):
    name = "sources"
    role = "t2i"

    def process(self, tasks: list[tuple[Scene, int]]) -> tuple[list[Source], Tally, float]:
        cfg = self.config
        by_bucket: dict[tuple[int, int], list[T2IRequest]] = defaultdict(list)
        scenes = {}
        for scene, n in tasks:
            sid = source_id(scene.scene_id, n)
            w, h = choose_bucket(cfg.seed, sid, cfg.sources.buckets, cfg.sources.scale)
            by_bucket[(w, h)].append(T2IRequest(sid, scene.prompt, item_seed(cfg.seed, sid, "t2i"), w, h))
            scenes[sid] = scene
        tally, out, cost = Tally(self.name), [], 0.0
        for reqs in by_bucket.values():
            for ans, r in zip(self.backend.generate(reqs), reqs):
                scene = scenes[r.item_id]
                src = Source(r.item_id, scene.scene_id, scene.prompt, r.seed, r.width, r.height, ans.image,
                             style=scene.style, instructions=scene.instructions, sim_truth=ans.sim_truth)
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
        return out, tally, cost
