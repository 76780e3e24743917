"""The scheduler as one Ray actor: the single owner of the job space, the ledger and the policy.

Same method names as JobScheduler, plus the driver's: `add_sources([(source_id, categories), ...])`,
`draw(n) -> Draw` (jobs, exhausted, pending, affordable, cancelled), `complete_batch([(attempt_id, costs, result), ...])`. Fast path: pull
with `draw_batch(n)` (numpy arrays, one round trip per batch; `JobBatch.jobs()` builds the Job rows
on the caller's side, about 400k jobs/s per process). Given a checkpoint path, the actor checkpoints
itself atomically every `checkpoint_every_s` seconds of calls (and on `checkpoint()`) and, with
resume=True, continues from that file when it exists.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ray

from nhr_ray.scheduler import checkpoint
from nhr_ray.scheduler.core import JobBatch, JobScheduler
from nhr_ray.scheduler.draw import Draw


class _SchedulerActor:
    def __init__(self, *args, run_config=None, checkpoint_path: str | None = None, checkpoint_every_s: float | None = None,
                 resume: bool = True, **kwargs):  # fmt: skip
        """A run's scheduler from its RunConfig (`run_config=`, JobScheduler.from_config), or from
        JobScheduler's own arguments. resume=True continues from checkpoint_path when it exists;
        resume=False starts anew but still refuses (now, not at the first save) a file there that
        belongs to another run."""
        self.path = Path(checkpoint_path) if checkpoint_path else None
        if checkpoint_every_s is None:
            checkpoint_every_s = run_config.scheduler.checkpoint_every_s if run_config is not None else 60.0
        self.every = checkpoint_every_s
        self.s = JobScheduler.from_config(run_config, **kwargs) if run_config is not None else JobScheduler(*args, **kwargs)
        self._restored = False
        if self.path is not None and self.path.exists():
            if resume:
                self.s.load(self.path)
                self._restored = True
            else:
                checkpoint.check(checkpoint.read_header(self.path), self.s._identity(), self.path)
        self._last_save = time.monotonic()

    def _maybe_checkpoint(self) -> None:
        if self.path is not None and time.monotonic() - self._last_save >= self.every:
            self.checkpoint()

    def checkpoint(self) -> float:
        """Write the checkpoint now (no-op without a path); returns the seconds it took."""
        if self.path is None:
            return 0.0
        t = time.perf_counter()
        self.s.save(self.path)
        self._last_save = time.monotonic()
        return time.perf_counter() - t

    def add_source(self, source_id: str, categories: list[str]) -> None:
        self.s.add_source(source_id, categories)

    def add_sources(self, items: list[tuple[str, list[str]]]) -> int:
        """[(source_id, instruction categories), ...] -> jobs now pending."""
        if items:
            self.s.add_sources([sid for sid, _ in items], [list(c) for _, c in items])
        return self.s.pending()

    def draw_batch(self, n: int) -> JobBatch:
        self._maybe_checkpoint()
        return self.s.draw_batch(n)

    def draw_keys(self, n: int):
        return self.s.draw_keys(n)

    def draw(self, n: int) -> Draw:
        """Up to n jobs, with the queue and budget right after the draw and the scheduler's stats."""
        self._maybe_checkpoint()
        d = self.s.draw_result(n)
        d.stats = self.s.stats()
        return d

    def charge(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.s.charge(role, stage, gpu_seconds)

    def complete(self, attempt, costs: dict, result: dict | None = None) -> None:
        self.s.complete(attempt, costs, result)

    def complete_batch(self, items: list[tuple[Any, dict, dict | None]]) -> None:
        for attempt, costs, result in items:
            self.s.complete(attempt, costs, result)
        self._maybe_checkpoint()

    complete_many = complete_batch

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

    def resume_done(self, items: list) -> dict[str, int]:
        return self.s.resume_done(items)

    def skip_recorded(self, attempts: list) -> None:
        self.s.skip_recorded(attempts)

    def requeue_unrecorded(self) -> int:
        return self.s.requeue_unrecorded()

    def restored(self) -> bool:
        """Whether this scheduler continued from its checkpoint."""
        return self._restored

    def known_sources(self) -> set[str]:
        return self.s.known_sources()

    def stats(self) -> dict[str, Any]:
        return self.s.stats()

    def ledger(self) -> dict[str, Any]:
        self.s.tick()
        return self.s.ledger.as_dict()


SchedulerActor = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1)(_SchedulerActor)


def start_scheduler_actor(*args, name: str | None = None, num_cpus: float = 0, **kwargs):
    """Start the actor (no GPU; by default no CPU reserved either: a draw of 1,000 jobs takes
    about a millisecond) and return its handle. One call at a time keeps the state consistent."""
    opts: dict[str, Any] = {"num_cpus": num_cpus, "max_concurrency": 1}
    if name:
        opts["name"] = name
    return SchedulerActor.options(**opts).remote(*args, **kwargs)
