"""The edit-job queue and the GPU-hour budget, as plain code (the Ray actor wraps it).

The queue is the N x k x M space: every surviving source image x each of its instructions x M
attempts. It grows while sources stream in. `draw(n)` takes jobs uniformly at random without
replacement from what is available at the time of the draw (swap-remove from a dense array of
packed integers: O(1) a draw). With `unit='pair'` the draw is uniform over (image, instruction)
pairs and hands out all M attempts of a drawn pair together.

The budget counts busy GPU-seconds. Jobs in flight hold an estimate of their cost (the running mean
of completed jobs, or the prior), so issuing stops within one batch of the budget.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from nhr_ray.records import Job, attempt_id, item_seed, pair_id


class BudgetExhausted(Exception):
    pass


@dataclass
class Ledger:
    """Busy GPU-seconds by role and by stage."""

    by_role: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    by_stage: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.by_role[role] += gpu_seconds
        self.by_stage[stage] += gpu_seconds

    @property
    def total(self) -> float:
        return float(sum(self.by_role.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "busy_gpu_seconds": self.total,
            "busy_gpu_hours": self.total / 3600,
            "by_role_gpu_hours": {k: v / 3600 for k, v in sorted(self.by_role.items())},
            "by_stage_gpu_hours": {k: v / 3600 for k, v in sorted(self.by_stage.items())},
        }


class JobScheduler:
    def __init__(
        self,
        run_seed: int,
        attempts_per_pair: int,
        unit: str = "job",
        budget_gpu_hours: float | None = None,
        prior_job_cost: float = 10.0,
    ):
        if unit not in ("job", "pair"):
            raise ValueError(f"unknown scheduler unit {unit!r}")
        self.run_seed = run_seed
        self.m = attempts_per_pair
        self.unit = unit
        self.budget_s = None if budget_gpu_hours is None else budget_gpu_hours * 3600.0
        self.prior = prior_job_cost
        self.rng = random.Random(run_seed)
        self.sources: list[str] = []
        self.available: list[int] = []  # packed (source index, instruction, attempt) or pair
        self.ledger = Ledger()
        self.inflight: dict[str, float] = {}  # attempt id -> cost estimate
        self.done_jobs = 0
        self.done_cost = 0.0
        self.issued = 0
        self.total_jobs = 0

    # -- queue -------------------------------------------------------------------------------
    def _pack(self, src: int, inst: int, att: int) -> int:
        return (src << 16) | (inst << 8) | att

    def add_source(self, source_id: str, categories: list[str]) -> None:
        """A surviving source image joins the queue with one pair per instruction (categories in
        instruction order; policies use them)."""
        num_instructions = len(categories)
        if num_instructions > 255 or self.m > 255:
            raise ValueError("at most 255 instructions per scene and 255 attempts per pair")
        idx = len(self.sources)
        self.sources.append(source_id)
        for i in range(num_instructions):
            if self.unit == "pair":
                self.available.append(self._pack(idx, i, 0))
            else:
                self.available.extend(self._pack(idx, i, a) for a in range(self.m))
        self.total_jobs += num_instructions * self.m

    def _job(self, packed: int) -> Job:
        src, inst, att = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
        sid = self.sources[src]
        pid = pair_id(sid, inst)
        aid = attempt_id(pid, att)
        return Job(aid, pid, sid, inst, att, item_seed(self.run_seed, aid, "edit"), self.estimate())

    def estimate(self) -> float:
        return self.done_cost / self.done_jobs if self.done_jobs >= 8 else self.prior

    @property
    def committed_s(self) -> float:
        return self.ledger.total + sum(self.inflight.values())

    @property
    def budget_left_s(self) -> float | None:
        return None if self.budget_s is None else max(0.0, self.budget_s - self.committed_s)

    def exhausted(self) -> bool:
        return self.budget_s is not None and self.committed_s >= self.budget_s

    def draw(self, n: int) -> list[Job]:
        """Up to n jobs (with unit='pair', whole pairs: up to n rounded up to M). Empty when the
        queue is empty for now or the budget is committed."""
        out: list[Job] = []
        while len(out) < n and self.available and not self.exhausted():
            j = self.rng.randrange(len(self.available))
            self.available[j], self.available[-1] = self.available[-1], self.available[j]
            packed = self.available.pop()
            jobs = [self._job(packed | a) for a in range(self.m)] if self.unit == "pair" else [self._job(packed)]
            for job in jobs:
                self.inflight[job.attempt_id] = job.cost_estimate
            out.extend(jobs)
        self.issued += len(out)
        return out

    def pending(self) -> int:
        return len(self.available) * (self.m if self.unit == "pair" else 1)

    # -- accounting --------------------------------------------------------------------------
    def charge(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.ledger.add(role, stage, gpu_seconds)

    def complete(self, attempt: str, costs: dict[str, tuple[str, float]], result: dict[str, Any] | None = None) -> None:
        """An attempt finished (whatever its outcome). costs: stage -> (role, GPU-s) spent on it;
        result: {'category', 'prefilter_pass', 'validator_pass', 'reason', 'score'} for policies."""
        self.inflight.pop(attempt, None)
        total = 0.0
        for stage, (role, s) in costs.items():
            self.ledger.add(role, stage, s)
            total += s
        self.done_jobs += 1
        self.done_cost += total

    def stats(self) -> dict[str, Any]:
        return {
            "sources": len(self.sources),
            "jobs_total": self.total_jobs,
            "jobs_issued": self.issued,
            "jobs_pending": self.pending(),
            "jobs_in_flight": len(self.inflight),
            "budget_gpu_hours": None if self.budget_s is None else self.budget_s / 3600,
            "spent_gpu_hours": self.ledger.total / 3600,
            "busy_by_role_gpu_hours": {k: v / 3600 for k, v in self.ledger.by_role.items()},
            "budget_exhausted": self.exhausted(),
        }
