"""Feeders: where the driver's work comes from, each readable alone.

    Designs   design requests in request order until there are enough scenes (re-asking for what
              malformed answers lost); their scenes become source tasks in request order, whatever
              order the answers come in. Real photos (sources.kind=images) skip design.
    edit jobs come from the scheduler (Miner.top_up_chains) and wait in `held` / `parked` there.
"""

from __future__ import annotations

import collections

from nhr_ray.runtime.resume import scene_from_json
from nhr_ray.stages.sources import source_tasks


class Designs:
    def __init__(self, cfg, saved: dict[int, dict], done_sources: set[str]):
        self.cfg, self.t = cfg, cfg.task
        self.saved = saved  # request index -> saved answer (state/design-NNNN.json)
        self.done_sources = done_sources  # made before a restart: not made again
        self.max_requests = 2 * -(-self.t.num_scenes // self.t.items_per_request) + 1  # re-ask for what was lost
        self.next_request = 0
        self.cursor, self.scenes_used = 0, 0
        self.source_queue: collections.deque = collections.deque()  # source tasks not submitted yet
        if cfg.sources.kind == "images":  # real photos: no design step, one source task per photo
            from nhr_ray.stages.photos import photo_tasks

            self.source_queue.extend(x for x in photo_tasks(cfg.sources.images, cfg.task)
                                     if f"{x[0].scene_id}.n00" not in done_sources)  # fmt: skip
            self.next_request = self.max_requests
        self.advance()

    def advance(self) -> None:
        """Turn the answers in, in request order, into source tasks (up to task.num_scenes scenes)."""
        t = self.t
        while self.cursor in self.saved and self.scenes_used < t.num_scenes:
            for sd in self.saved[self.cursor]["scenes"][: t.num_scenes - self.scenes_used]:
                sc = scene_from_json(sd)
                self.source_queue.extend(x for x in source_tasks(sc, self.cfg.sources.seeds_per_prompt)
                                         if f"{sc.scene_id}.n{x[1]:02d}" not in self.done_sources)  # fmt: skip
                self.scenes_used += 1
            self.cursor += 1

    def wanted(self, in_flight: int) -> bool:
        """Whether another request is needed, with `in_flight` requests out."""
        t = self.t
        coming = t.items_per_request * in_flight + sum(len(self.saved[i]["scenes"]) for i in self.saved if i >= self.cursor)
        return self.next_request < self.max_requests and self.scenes_used + coming < t.num_scenes

    def take(self) -> int | None:
        """The next request to ask (None: its answer was saved before a restart)."""
        req = self.next_request
        self.next_request += 1
        return None if req in self.saved else req

    def asked_all(self) -> bool:
        """Enough scenes, or every request asked."""
        return self.scenes_used >= self.t.num_scenes or self.next_request >= self.max_requests
