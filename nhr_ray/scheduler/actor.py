"""The scheduler as a Ray actor: one per run, owning the job queue and the GPU-hour ledger."""

from __future__ import annotations

from typing import Any

import ray

from nhr_ray.scheduler.core import JobScheduler


@ray.remote(num_cpus=0, max_restarts=0)
class SchedulerActor:
    def __init__(self, **kwargs: Any):
        self.core = JobScheduler(**kwargs)

    def add_sources(self, items: list[tuple[str, list[str]]]) -> int:
        for sid, cats in items:
            self.core.add_source(sid, cats)
        return self.core.pending()

    def draw(self, n: int) -> tuple[list, dict]:
        return self.core.draw(n), self.stats()

    def charge(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.core.charge(role, stage, gpu_seconds)

    def complete_batch(self, items: list[tuple[str, dict, dict | None]]) -> None:
        for aid, costs, result in items:
            self.core.complete(aid, costs, result)

    def stats(self) -> dict:
        return self.core.stats()

    def ledger(self) -> dict:
        return self.core.ledger.as_dict()
