"""Drawn jobs: JobBatch (arrays, cheap to ship through Ray) and Draw, what one draw gives the
runtime: the jobs, and the queue and budget right after it, read by name (no stats keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nhr_ray.records import Job, attempt_id, item_seed, pair_id


@dataclass
class Draw:
    jobs: list[Job] = field(default_factory=list)
    exhausted: bool = False  # the budget is committed: nothing more will be drawn
    pending: int = 0  # jobs in the queue, not drawn yet
    # jobs the budget not yet committed pays for at the current estimate (inf without a budget):
    # what elastic pools size the editors for, never more than `pending`
    affordable: float = math.inf
    cancelled_by_source: dict[str, int] = field(default_factory=dict)  # jobs a policy withdrew since the last draw
    stats: dict[str, Any] = field(default_factory=dict)  # the scheduler's full report (progress, metrics, sizer)

    def waiting_jobs(self, pending: int) -> float:
        """Jobs that can still run: `pending` (the runtime's count, which grows between draws as
        sources come in) as far as the budget pays for them."""
        return min(pending, self.affordable)


@dataclass
class JobBatch:
    """Drawn jobs as arrays (cheap to ship through Ray); `jobs()` makes the Job rows."""

    run_seed: int
    keys: np.ndarray  # pair << 6 | attempt
    source_ids: np.ndarray  # bytes, one per job
    instruction: np.ndarray
    attempt: np.ndarray
    cost_estimate: float

    def __len__(self) -> int:
        return len(self.keys)

    def jobs(self) -> list[Job]:
        out = []
        for sid, inst, att in zip(self.source_ids.tolist(), self.instruction.tolist(), self.attempt.tolist()):
            aid = attempt_id(pair_id(sid.decode(), inst), att)
            out.append(Job(aid, aid.rpartition(".m")[0], sid.decode(), inst, att,
                           item_seed(self.run_seed, aid, "edit"), self.cost_estimate))  # fmt: skip
        return out
