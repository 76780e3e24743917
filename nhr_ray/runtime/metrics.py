"""Custom metrics through ray.util.metrics, exported on each node's Prometheus endpoint and shown by
cluster/grafana-nhr-ray.json. The names below are the Prometheus names, as Ray exports them (it adds
`ray_` in front, and `_total` after a counter's name).

    ray_nhr_stage_rows_total{stage,outcome,reason}   rows leaving a stage: kept / dropped / failed
    ray_nhr_queue_depth{role}                        batches queued or running on a role's actors
    ray_nhr_gpu_hours{role,clock}                    busy GPU-hours so far (clock="busy"); reserved (clock="reserved")
    ray_nhr_budget_remaining_gpu_hours
    ray_nhr_api_tokens_total{role,direction}         input / output tokens
    ray_nhr_api_cost_usd_total{role}
    ray_nhr_call_latency_seconds{role}               one actor call (a batch), recorded by the actor
    ray_nhr_triplets_total{kind}
"""

from __future__ import annotations

import time

from ray.util import metrics as M

LATENCY_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]


class RunMetrics:
    def __init__(self, run: str):
        tags = {"run": run}
        self.rows = M.Counter("nhr_stage_rows", "Rows leaving a stage by outcome and reason.",
                              tag_keys=("run", "stage", "outcome", "reason"))
        self.queue = M.Gauge("nhr_queue_depth", "Batches queued or running per role.", tag_keys=("run", "role"))
        self.gpu = M.Gauge("nhr_gpu_hours", "GPU-hours by role and clock.", tag_keys=("run", "role", "clock"))
        self.budget = M.Gauge("nhr_budget_remaining_gpu_hours", "Budget left.", tag_keys=("run",))
        self.tokens = M.Counter("nhr_api_tokens", "API tokens.", tag_keys=("run", "role", "direction"))
        self.cost = M.Counter("nhr_api_cost_usd", "Estimated API cost.", tag_keys=("run", "role"))
        self.triplets = M.Counter("nhr_triplets", "Final triplets by kind.", tag_keys=("run", "kind"))
        for m in (self.rows, self.queue, self.gpu, self.budget, self.tokens, self.cost, self.triplets):
            m.set_default_tags(tags)
        self._last_gauges = 0.0

    def verdict(self, stage: str, outcome: str, reason: str, n: int = 1) -> None:
        if n > 0:
            self.rows.inc(n, tags={"stage": stage, "outcome": outcome, "reason": reason[:60]})

    def tally(self, t) -> None:
        self.verdict(t.stage, "kept", "ok", t.kept)
        for r, n in t.dropped.items():
            self.verdict(t.stage, "dropped", r, n)
        for r, n in t.failed.items():
            self.verdict(t.stage, "failed", r, n)

    def usage(self, role: str, usage: dict[str, float]) -> None:
        for direction in ("input", "output"):
            n = usage.get(f"{direction}_tokens", 0)
            if n:
                self.tokens.inc(n, tags={"role": role, "direction": direction})
        if usage.get("usd"):
            self.cost.inc(usage["usd"], tags={"role": role})

    def gauges(self, pools: dict, stats: dict, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_gauges < 1.0:
            return
        self._last_gauges = now
        for role, pool in pools.items():
            self.queue.set(pool.total_load, tags={"role": role})
        for role, h in (stats.get("busy_by_role_gpu_hours") or {}).items():
            self.gpu.set(h, tags={"role": role, "clock": "busy"})
        for role, h in (stats.get("reserved_by_role_gpu_hours") or {}).items():
            self.gpu.set(h, tags={"role": role, "clock": "reserved"})
        if stats.get("budget_gpu_hours") is not None:
            self.budget.set(max(0.0, stats["budget_gpu_hours"] - stats.get("spent_gpu_hours", 0.0)))
