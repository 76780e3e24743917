"""The edit-job queue and the GPU-hour budget, as plain code (the Ray actor wraps it).

The queue is the N x k x M space: every surviving source image x each of its instructions x M
attempts, held compactly by `JobSpace` (11 bytes a pair, no Python object per job or pair). It
grows while sources stream in. `draw(n)` takes jobs uniformly at random without replacement from
what is available at the time of the draw (policy `uniform`); with `unit='pair'` the draw is
uniform over (image, instruction) pairs and hands out all remaining attempts of a drawn pair.
Other policies (policies.py) weight categories and stop pairs early.

Budget: `budget_clock='busy'` counts busy GPU-seconds (what calls took x GPUs, reported by the
actors), `'reserved'` counts GPUs held x wall time (see ledger.py; never less than busy). Jobs in
flight hold an estimate of their cost and a draw is cut to what the budget left can pay for, so
issuing stops within one job of the budget. The estimate is the mean cost of jobs this run issued
and measured (a cost > 0 reported by the actors), the prior until eight are in, and never below
MIN_ESTIMATE_SHARE of the prior: jobs taken from the record after a restart, and jobs that failed
before any GPU work, are paid but never measured.

Resume: `resume_done` takes the jobs the run's record holds out of the queue (paying their recorded
costs and showing their results to the policy), whether the queue was restored from a checkpoint
or rebuilt from the record; a recorded job whose source is not known yet leaves the queue when its
source is added. A job the record holds is never drawn again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np

from nhr_ray.records import Job
from nhr_ray.scheduler.draw import Draw, JobBatch
from nhr_ray.scheduler.persist import CheckpointMixin
from nhr_ray.scheduler.ledger import Ledger
from nhr_ray.scheduler.record import RecordMixin
from nhr_ray.scheduler.report import StatsMixin
from nhr_ray.scheduler.policies import ACTIVE, STATUS_NAMES, make_policy
from nhr_ray.scheduler.space import ATTEMPT_BITS, JobSpace

DEFAULT_CATEGORIES = ["removal", "addition", "colour_change", "replacement", "style"]
MIN_ESTIMATE_SHARE = 1e-3  # the per-job estimate never falls below this share of the prior (> 0)


def scheduler_config_hash(cfg) -> str:
    """Hash of what defines a run's job space and draws: every config field a resumed or extended
    run may not change (nhr_ray/resumable.py holds the one list of those it may)."""
    from nhr_ray.resumable import config_hash

    return config_hash(cfg)


class JobScheduler(RecordMixin, CheckpointMixin, StatsMixin):
    def __init__(
        self,
        run_seed: int,
        attempts_per_pair: int,
        unit: str = "job",
        budget_gpu_hours: float | None = None,
        prior_job_cost: float = 10.0,
        *,
        policy: str = "uniform",
        policy_options: dict[str, Any] | None = None,
        budget_clock: str = "busy",
        categories: list[str] | None = None,
        config_hash: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        if unit not in ("job", "pair"):
            raise ValueError(f"unknown scheduler unit {unit!r}")
        if budget_clock not in ("busy", "reserved"):
            raise ValueError(f"unknown budget clock {budget_clock!r}; known: busy, reserved")
        if budget_gpu_hours is not None and not budget_gpu_hours > 0:
            raise ValueError(f"budget_gpu_hours must be > 0 (or None for no budget), got {budget_gpu_hours}")
        if prior_job_cost <= 0:
            raise ValueError("prior_job_cost must be > 0")
        self.run_seed, self.m, self.unit = run_seed, attempts_per_pair, unit
        self.budget_s = None if budget_gpu_hours is None else budget_gpu_hours * 3600.0
        self.budget_clock, self.prior, self.config_hash = budget_clock, prior_job_cost, config_hash
        self.category_names = list(categories or DEFAULT_CATEGORIES)
        self._cat_code = {c: i for i, c in enumerate(self.category_names)}
        self.policy = make_policy(policy, policy_options, self.category_names, attempts_per_pair, unit)
        self.policy_name = policy
        self.space = JobSpace(len(self.category_names), self.policy.max_attempts())
        self.rng = np.random.default_rng([run_seed, 0x5C4ED])
        self.ledger = Ledger(clock)
        self.inflight: dict[int, float] = {}  # job key -> cost estimate held
        self.inflight_s = 0.0
        self._src_lookup: dict[str, int] = {}
        self._cancelled_by_source: dict[int, int] = {}
        self.c = dict.fromkeys(
            ["issued", "done_jobs", "wasted", "unknown_completions", "cancelled_jobs", "requeued",
             "abandoned_after_restart", "redone_unrecorded", "jobs_total", "taken_from_record", "drawn_again_recorded"], 0
        )  # fmt: skip
        self._recorded: set[int] = set()  # job keys the run's record holds (resume_done, while resuming)
        self._resume_index: dict[str, int] | None = None  # source id -> index, while resuming
        self._recorded_later: dict[str, list] = {}  # source id -> recorded (instruction, attempt, result) of a source not added yet
        self.done_cost = self.wasted_s = 0.0
        self.measured_n, self.measured_s = 0, 0.0  # jobs this run issued and measured (cost > 0): the estimate
        self.stopped = dict.fromkeys(STATUS_NAMES.values(), 0)
        self.cat_stats = {k: np.zeros(len(self.category_names), np.int64)
                          for k in ("issued", "completed", "prefilter_pass", "validator_pass")}  # fmt: skip

    # -- queue -------------------------------------------------------------------------------
    def _code(self, category: str) -> int:
        if category not in self._cat_code:
            self._cat_code[category] = len(self.category_names)
            self.category_names.append(category)
            self.space.add_categories(len(self.category_names))
            for v in self.cat_stats.values():
                v.resize(len(self.category_names), refcheck=False)
        return self._cat_code[category]

    def add_source(self, source_id: str, categories: list[str]) -> None:
        """A surviving source image joins the queue with one pair per instruction (categories in
        instruction order; policies use them)."""
        self.add_sources([source_id], [categories])

    def add_sources(self, source_ids: list[str], categories: list[list[str]]) -> None:
        if any(len(c) > 255 for c in categories):
            raise ValueError("at most 255 instructions per scene")
        flat = np.array([self._code(c) for cs in categories for c in cs], np.uint8)
        full = self._full_masks()
        counts = np.array([len(c) for c in categories], np.int64)
        self.space.add_sources(source_ids, counts, flat, full[flat].astype(self.space.mask_dtype))
        self.c["jobs_total"] += int(np.bitwise_count(full[flat]).sum())
        if self._recorded_later:  # jobs the record holds for a source it had not recorded: out of the queue now
            self._take_later(source_ids, categories)

    def _full_masks(self) -> np.ndarray:
        """Per category, the attempt bits a new pair starts with (M as the policy sets it)."""
        return np.array([(1 << self.policy.attempts_for(c)) - 1 for c in self.category_names], np.uint64)

    def known_sources(self) -> set[str]:
        """Ids of every source added (O(N), for a runtime resuming from a checkpoint)."""
        return {s.decode() for s in self.space.src_ids[: self.space.n_sources].tolist()}

    def estimate(self) -> float:
        """GPU-seconds a job in flight holds: the mean measured cost once eight jobs this run issued
        were measured, else the prior; never below MIN_ESTIMATE_SHARE of the prior, so never 0."""
        mean = self.measured_s / self.measured_n if self.measured_n >= 8 else self.prior
        return max(mean, self.prior * MIN_ESTIMATE_SHARE)

    # -- budget ------------------------------------------------------------------------------
    def set_reserved(self, gpus: float | dict[str, float], now: float | None = None) -> None:
        """The runtime tells how many GPUs the pipeline's actors hold from now on."""
        self.ledger.set_reserved(gpus, now)

    def tick(self, now: float | None = None) -> None:
        self.ledger.tick(now)

    @property
    def spent_s(self) -> float:
        """GPU-seconds spent on the budget's clock (reserved is never counted below busy)."""
        busy = self.ledger.total
        return busy if self.budget_clock == "busy" else max(busy, self.ledger.reserved_s)

    @property
    def committed_s(self) -> float:
        held = self.inflight_s
        if self.budget_clock == "reserved" and self.ledger.total > 0:
            held *= max(1.0, self.ledger.reserved_s / self.ledger.total)
        return self.spent_s + held

    @property
    def budget_left_s(self) -> float | None:
        return None if self.budget_s is None else max(0.0, self.budget_s - self.committed_s)

    def exhausted(self) -> bool:
        self.tick()
        return self.budget_s is not None and self.committed_s >= self.budget_s

    # -- draws -------------------------------------------------------------------------------
    def draw_keys(self, n: int) -> np.ndarray:
        """Up to n job keys (pair << 6 | attempt), registered in flight. The fast path."""
        if n <= 0 or self.exhausted():
            return np.empty(0, np.int64)
        est = self.estimate()
        if self.budget_s is not None:
            per = est * (self.m if self.unit == "pair" else 1)
            n = min(n, max(1, math.ceil(self.budget_left_s / per)))
        w = self.policy.weights(self)
        draw = self.space.draw_pairs if self.unit == "pair" else self.space.draw_jobs
        pairs, atts = draw(n, self.rng, w)
        keys = (pairs << ATTEMPT_BITS) | atts
        self.inflight.update(zip(keys.tolist(), repeat(est)))
        self.inflight_s += len(keys) * est
        self.c["issued"] += len(keys)
        self.cat_stats["issued"] += np.bincount(self.space.cat[pairs], minlength=len(self.category_names))
        return keys

    def batch(self, keys: np.ndarray) -> JobBatch:
        pairs, atts = keys >> ATTEMPT_BITS, keys & ((1 << ATTEMPT_BITS) - 1)
        src, inst = self.space.source_of(pairs)
        return JobBatch(self.run_seed, keys, self.space.src_ids[src], inst, atts, self.estimate())

    def draw_batch(self, n: int) -> JobBatch:
        return self.batch(self.draw_keys(n))

    def draw(self, n: int) -> list[Job]:
        """Up to n jobs (with unit='pair', whole pairs: up to n pairs' remaining attempts). Empty
        when the queue is empty for now or the budget is committed."""
        return self.draw_batch(n).jobs()

    def pending(self) -> int:
        return self.space.pending

    # -- results -----------------------------------------------------------------------------
    def charge(self, role: str, stage: str, gpu_seconds: float) -> None:
        """GPU time not tied to one edit job (T2I, gate, inversion, ...)."""
        self.ledger.add(role, stage, gpu_seconds)

    def complete(self, attempt: str | int, costs: dict[str, tuple[str, float]], result: dict[str, Any] | None = None) -> None:
        """An attempt finished (whatever its outcome). costs: stage -> (role, GPU-s) spent on it;
        result: {'category', 'prefilter_pass', 'validator_pass', 'reason', 'score'} for policies.
        A result for a pair a policy already stopped is counted as wasted."""
        key = self._key(attempt)
        est = self.inflight.pop(key, None) if key is not None else None
        total = self._pay(costs)
        if est is None:  # a duplicate, or a job from before a restart: costs count, nothing else
            self.c["unknown_completions"] += 1
            return
        self.inflight_s -= est
        self.c["done_jobs"] += 1
        self.done_cost += total
        if total > 0:  # a job that failed before any GPU work tells nothing about what jobs cost
            self.measured_n += 1
            self.measured_s += total
        pair = key >> ATTEMPT_BITS
        cat = int(self.space.cat[pair])
        self.cat_stats["completed"][cat] += 1
        if self._show_result(pair, cat, result):
            self.c["wasted"] += 1
            self.wasted_s += total

    def _show_result(self, pair: int, cat: int, result: dict[str, Any] | None) -> bool:
        """Count a result and show it to the policy; True when the pair was stopped already."""
        if result is None:
            return False
        self.cat_stats["prefilter_pass"][cat] += bool(result.get("prefilter_pass"))
        self.cat_stats["validator_pass"][cat] += bool(result.get("validator_pass"))
        if self.space.state[pair] & 7 != ACTIVE:
            return True
        self.policy.on_result(self, pair, cat, result)
        return False

    def _pay(self, costs: dict[str, tuple[str, float]]) -> float:
        """Book an attempt's costs (stage -> (role, GPU-s)) in the ledger; returns their sum."""
        for stage, (role, s) in costs.items():
            self.ledger.add(role, stage, s)
        return float(sum(s for _, s in costs.values()))

    def stop_pair(self, pair: int, status: int) -> None:
        """No more attempts for this pair (a policy's call); counts the attempts saved."""
        self.space.state[pair] = (self.space.state[pair] & ~np.uint8(7)) | status
        self.stopped[STATUS_NAMES[status]] += 1
        n = self.space.cancel(np.array([pair]))
        self.c["cancelled_jobs"] += n
        if n:
            src = int(self.space.source_of(np.array([pair]))[0][0])
            self._cancelled_by_source[src] = self._cancelled_by_source.get(src, 0) + n

    def drain_cancelled(self) -> dict[str, int]:
        """{source id: jobs cancelled} since the last call, for a runtime that counts each source's
        outstanding jobs (it holds the image until they are done)."""
        out = self._cancelled_by_source
        self._cancelled_by_source = {}
        ids = self.space.src_ids[np.fromiter(out, np.int64, len(out))].tolist() if out else []
        return {i.decode(): n for i, n in zip(ids, out.values())}

    @classmethod
    def from_config(cls, cfg, **kw) -> JobScheduler:
        """The run's scheduler, as its config sets it: the one place the runtime builds it from.
        Its config hash guards resume; the prior cost of a job until eight are measured is SPEC.md's
        GPU-seconds per attempt summed over the attempt chain's roles (runtime/sizing.py)."""
        from nhr_ray.runtime.sizing import prior_job_cost

        sc = cfg.scheduler
        kw.setdefault("config_hash", scheduler_config_hash(cfg))
        kw.setdefault("prior_job_cost", prior_job_cost())
        return cls(
            cfg.seed, cfg.edit.attempts_per_instruction, sc.unit, sc.budget_gpu_hours, policy=sc.policy,
            policy_options=sc.policy_options, budget_clock=sc.budget_clock, **kw,
        )  # fmt: skip

    def draw_result(self, n: int) -> Draw:
        """draw(n), and the queue and budget right after it."""
        jobs = self.draw(n)
        left = self.budget_left_s
        return Draw(jobs, self.exhausted(), self.pending(), math.inf if left is None else left / self.estimate(),
                    self.drain_cancelled())  # fmt: skip
