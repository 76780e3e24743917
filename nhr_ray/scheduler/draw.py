"""What one draw from the scheduler gives the runtime: the jobs, and the queue and budget as they
stand right after it, read by name (no stats keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nhr_ray.records import Job


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
