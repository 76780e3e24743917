"""JobScheduler's report: queue, budget, policy and per-category counts, as the manifest and the
runtime's progress and metrics read them."""

from __future__ import annotations

from typing import Any


class StatsMixin:
    def stats(self) -> dict[str, Any]:
        h = 3600.0
        names = self.category_names
        return {
            "sources": self.space.n_sources,
            "pairs": self.space.n_pairs,
            "jobs_total": self.c["jobs_total"],
            "jobs_issued": self.c["issued"],
            "jobs_pending": self.pending(),
            "jobs_in_flight": len(self.inflight),
            "jobs_completed": self.c["done_jobs"],
            "jobs_wasted": self.c["wasted"],
            "wasted_gpu_hours": self.wasted_s / h,
            "jobs_cancelled": self.c["cancelled_jobs"],
            "jobs_requeued_after_restart": self.c["requeued"],
            "jobs_abandoned_after_restart": self.c["abandoned_after_restart"],
            "jobs_redone_unrecorded": self.c["redone_unrecorded"],
            "jobs_taken_from_record": self.c["taken_from_record"],
            "jobs_drawn_again_recorded": self.c["drawn_again_recorded"],
            "unknown_completions": self.c["unknown_completions"],
            "pairs_stopped": dict(self.stopped),
            "policy": self.policy_name,
            "policy_report": self.policy.report(self),
            "per_category": {k: dict(zip(names, v.tolist())) for k, v in self.cat_stats.items()},
            "budget_clock": self.budget_clock,
            "budget_gpu_hours": None if self.budget_s is None else self.budget_s / h,
            "spent_gpu_hours": self.spent_s / h,
            "busy_by_role_gpu_hours": {k: v / h for k, v in self.ledger.by_role.items()},
            "reserved_by_role_gpu_hours": {k: v / h for k, v in self.ledger.reserved_by_role.items()},
            "committed_gpu_hours": self.committed_s / h,
            "budget_exhausted": self.exhausted(),
            "job_cost_estimate_s": self.estimate(),
            "ledger": self.ledger.as_dict(),
        }
