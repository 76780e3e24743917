"""The scheduler as one Ray actor: the single owner of the job space, the ledger and the policy.

Same method names as JobScheduler. Workers should pull with `draw_batch(n)` (numpy arrays, one
round trip per batch; `JobBatch.jobs()` builds the Job rows on the worker's side) and report with
`complete_many([...])`; `draw(n)` returns Job rows for callers that want them ready-made. The actor
checkpoints itself atomically into the output folder every `checkpoint_every_s` seconds of calls
(and on `checkpoint()`), and resumes from that file when it exists.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ray

from nhr_ray.scheduler.core import JobBatch, JobScheduler


class SchedulerActor:
    def __init__(self, *args, checkpoint_path: str | None = None, checkpoint_every_s: float = 60.0, **kwargs):
        self.path = Path(checkpoint_path) if checkpoint_path else None
        self.every = checkpoint_every_s
        self.s = JobScheduler.open(self.path, *args, **kwargs) if self.path else JobScheduler(*args, **kwargs)
        self._last_save = time.monotonic()

    def _maybe_checkpoint(self) -> None:
        if self.path is not None and time.monotonic() - self._last_save >= self.every:
            self.checkpoint()

    def checkpoint(self) -> float:
        t = time.perf_counter()
        self.s.save(self.path)
        self._last_save = time.monotonic()
        return time.perf_counter() - t

    def add_source(self, source_id: str, categories: list[str]) -> None:
        self.s.add_source(source_id, categories)

    def add_sources(self, source_ids: list[str], categories: list[list[str]]) -> None:
        self.s.add_sources(source_ids, categories)

    def draw_batch(self, n: int) -> JobBatch:
        self._maybe_checkpoint()
        return self.s.draw_batch(n)

    def draw_keys(self, n: int):
        return self.s.draw_keys(n)

    def draw(self, n: int):
        return self.s.draw(n)

    def charge(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.s.charge(role, stage, gpu_seconds)

    def complete(self, attempt, costs: dict, result: dict | None = None) -> None:
        self.s.complete(attempt, costs, result)

    def complete_many(self, items: list[tuple[Any, dict, dict | None]]) -> None:
        for attempt, costs, result in items:
            self.s.complete(attempt, costs, result)
        self._maybe_checkpoint()

    def set_reserved(self, gpus, now: float | None = None) -> None:
        self.s.set_reserved(gpus, now)

    def tick(self, now: float | None = None) -> None:
        self.s.tick(now)

    def exhausted(self) -> bool:
        return self.s.exhausted()

    def pending(self) -> int:
        return self.s.pending()

    def estimate(self) -> float:
        return self.s.estimate()

    def known_sources(self) -> set[str]:
        return self.s.known_sources()

    def stats(self) -> dict[str, Any]:
        return self.s.stats()

    def ledger(self) -> dict[str, Any]:
        return self.s.ledger.as_dict()


def start_scheduler_actor(*args, name: str | None = None, num_cpus: float = 0, **kwargs):
    """Start the actor (no GPU; by default no CPU reserved either: a draw of 1,000 jobs takes
    about a millisecond) and return its handle. One call at a time keeps the state consistent."""
    opts: dict[str, Any] = {"num_cpus": num_cpus, "max_concurrency": 1}
    if name:
        opts["name"] = name
    return ray.remote(SchedulerActor).options(**opts).remote(*args, **kwargs)
