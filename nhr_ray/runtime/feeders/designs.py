"""Designs: design requests in request order until there are enough scenes (re-asking for what
malformed answers lost); their scenes become source tasks in request order, whatever order the
answers come in. Real photos (sources.kind=images) skip design. `Designs` is the bookkeeping (plain
code), `DesignFeeder` submits the requests to the designer pool."""

from __future__ import annotations

import collections

from nhr_ray.runtime.resume import scene_from_json
from nhr_ray.runtime.work import DesignWork
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


class DesignFeeder:
    """Asks the designer, in request order, while it has room and more scenes are wanted."""

    def __init__(self, m, designs: Designs):
        self.m, self.designs = m, designs
        self.per_actor = m.cfg.role("designer").max_in_flight

    def in_flight(self) -> int:
        return sum(1 for w in self.m.inflight.values() if isinstance(w, DesignWork))

    def top_up(self) -> None:
        d, pool = self.designs, self.m.pools["designer"]
        while pool.capacity(self.per_actor) > 0 and not self.m.chains.exhausted and d.wanted(self.in_flight()):
            req = d.take()
            if req is not None:
                self.submit(req)

    def submit(self, req: int) -> None:
        i, ref = self.m.pools["designer"].run([req])
        self.m.inflight[ref] = DesignWork(i, req)

    def done(self) -> bool:
        """Every design asked for is in."""
        return self.designs.asked_all() and not self.in_flight()
