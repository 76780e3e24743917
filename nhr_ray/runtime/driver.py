"""The driver loop: streams scenes -> sources -> gate -> edit jobs through the role pools.

Every batch of work is a chain of actor calls submitted at once (Ray passes each stage's rows to the
next as object refs), so no actor waits on the driver between stages. The driver only tops up the
chains, writes finished rows to Parquet shards and feeds the scheduler; it never holds the dataset:
source images live in the object store until their jobs are drawn, results go to disk as they come.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from nhr_ray.io.rows import attempt_row, source_row
from nhr_ray.io.shards import ATTEMPTS_SCHEMA, SOURCES_SCHEMA, ShardWriter
from nhr_ray.records import Verdict
from nhr_ray.runtime.actors import Pool
from nhr_ray.runtime.funnel import Funnel
from nhr_ray.runtime.progress import Progress
from nhr_ray.scheduler.actor import SchedulerActor
from nhr_ray.stages.design import DesignStage
from nhr_ray.stages.edit import EditStage
from nhr_ray.stages.gate import GateStage
from nhr_ray.stages.lowlevel import LowLevelStage
from nhr_ray.stages.prefilter import PrefilterStage
from nhr_ray.stages.sources import SourceStage, source_tasks
from nhr_ray.stages.validate import ValidateStage

log = logging.getLogger(__name__)

STAGE_ROLE = {"edit": "editor", "prefilter": "prefilter", "lowlevel": "cpu", "validate": "validator"}


@dataclass
class Usage:
    """API usage summed by role (tokens, calls, usd)."""

    by_role: dict[str, dict[str, float]] = field(default_factory=lambda: collections.defaultdict(lambda: collections.defaultdict(float)))

    def add(self, role: str, usage: dict[str, float]) -> None:
        for k, v in usage.items():
            self.by_role[role][k] += float(v)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {r: dict(u) for r, u in self.by_role.items()}


class Miner:
    """One run's streaming phase (stages 1-8). `finalize.py` does best-of, inversion, composition and
    backward consistency afterwards from what this wrote."""

    def __init__(self, cfg, out_dir: Path):
        self.cfg = cfg
        self.out = out_dir
        self.funnel = Funnel()
        self.usage = Usage()
        self.progress = Progress(cfg.output.progress)
        data = out_dir / "data"
        self.src_writer = ShardWriter(data, "sources", SOURCES_SCHEMA, cfg.output.shard_rows)
        self.att_writer = ShardWriter(data, "attempts", ATTEMPTS_SCHEMA, cfg.output.shard_rows)

    # -- setup ---------------------------------------------------------------------------------
    def start_pools(self) -> None:
        cfg = self.cfg

        def pool(role: str, stage_cls) -> Pool:
            rc = cfg.role(role)
            return Pool(role, stage_cls, cfg, rc.actors, rc.num_gpus, rc.num_cpus)

        self.pools = {
            "designer": pool("designer", DesignStage),
            "t2i": pool("t2i", SourceStage if cfg.sources.kind == "t2i" else _photo_stage()),
            "gate": pool("gate", GateStage),
            "editor": pool("editor", EditStage),
            "prefilter": pool("prefilter", PrefilterStage),
            "validator": pool("validator", ValidateStage),
            "cpu": Pool("cpu", LowLevelStage, cfg, cfg.ray.cpu_workers, 0, 0.5),
        }
        s = cfg.scheduler
        self.scheduler = SchedulerActor.remote(
            run_seed=cfg.seed,
            attempts_per_pair=cfg.edit.attempts_per_instruction,
            unit=s.unit,
            budget_gpu_hours=s.budget_gpu_hours,
        )
        # load every model before work starts, so a broken backend fails the run at once
        ray.get([r for p in self.pools.values() for r in p.setup()])

    def shutdown(self) -> None:
        for p in getattr(self, "pools", {}).values():
            p.shutdown()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t = cfg.task
        n_requests_needed = -(-t.num_scenes // t.items_per_request)
        max_requests = 2 * n_requests_needed + 1  # re-ask for what malformed answers lost
        next_request, scenes_ok = 0, 0
        source_queue: collections.deque = collections.deque()
        inflight: dict[ray.ObjectRef, tuple[str, str, int, Any]] = {}
        per_actor = {r: cfg.role(r).max_in_flight for r in ("designer", "t2i", "gate", "editor", "prefilter", "validator")}
        per_actor["cpu"] = 4
        self.source_refs: dict[str, ray.ObjectRef] = {}
        self.jobs_left: collections.Counter = collections.Counter()
        self.scenes_used = 0
        pending_jobs = 0
        exhausted = False
        sched_stats: dict[str, Any] = {}
        if cfg.sources.kind == "images":  # real photos: no design step, one source task per photo
            from nhr_ray.stages.photos import photo_tasks

            source_queue.extend(photo_tasks(cfg.sources.images))
            next_request = max_requests

        while True:
            # 1. design: enough scene prompts, re-asking when answers were lost
            while (
                self.pools["designer"].capacity(per_actor["designer"]) > 0
                and scenes_ok + self._designs_inflight(inflight) * t.items_per_request < t.num_scenes
                and next_request < max_requests
                and not exhausted
            ):
                i, ref = self.pools["designer"].call("process", [next_request])
                inflight[ref] = ("design", "designer", i, next_request)
                next_request += 1
            # 2. sources first (cheap, and they feed the queue), chained into the gate
            while source_queue and not exhausted and self.pools["t2i"].capacity(per_actor["t2i"]) > 0 \
                    and self.pools["gate"].capacity(per_actor["gate"]) > 0:
                batch = [source_queue.popleft() for _ in range(min(cfg.sources.batch_size, len(source_queue)))]
                i, t2i_ref = self.pools["t2i"].call("process", batch)
                j, ref = self.pools["gate"].call("process_then", t2i_ref)
                inflight[ref] = ("sources", "gate", j, i)
            # 3. edit chains: editor -> prefilter -> low-level (CPU) -> validator
            while not exhausted and self.pools["editor"].capacity(per_actor["editor"]) > 0:
                jobs, sched_stats = ray.get(self.scheduler.draw.remote(cfg.scheduler.batch_size))
                exhausted = sched_stats["budget_exhausted"]
                pending_jobs = sched_stats["jobs_pending"]
                if not jobs:
                    break
                self._submit_chain(jobs, inflight)
            design_done = (scenes_ok >= t.num_scenes or next_request >= max_requests) and not self._designs_inflight(inflight)
            if not inflight and (exhausted or (design_done and not source_queue and pending_jobs == 0)):
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                kind, role, actor, extra = inflight.pop(ref)
                self._release(kind, role, actor, extra)
                if kind == "design":
                    scenes_ok += self._on_design(ref, source_queue)
                elif kind == "sources":
                    pending_jobs += self._on_sources(ref)
                else:
                    self._on_attempts(ref, extra)
            self.progress.update(self.funnel, sched_stats, exhausted)

        self.src_writer.close()
        self.att_writer.close()
        self.progress.close()
        ledger = ray.get(self.scheduler.ledger.remote())
        return {"ledger": ledger, "scheduler": ray.get(self.scheduler.stats.remote()), "usage": self.usage.as_dict()}

    @staticmethod
    def _designs_inflight(inflight) -> int:
        return sum(1 for v in inflight.values() if v[0] == "design")

    def _release(self, kind: str, role: str, actor: int, extra: Any) -> None:
        if kind == "sources":
            self.pools["gate"].done(actor)
            self.pools["t2i"].done(extra)
        elif kind == "chain":
            for r, i in extra["actors"]:
                self.pools[r].done(i)
        else:
            self.pools[role].done(actor)

    def _submit_chain(self, jobs, inflight) -> None:
        srcs = {j.source_id: self.source_refs[j.source_id] for j in jobs}
        used = []
        i, ref = self.pools["editor"].call("process_first", jobs, srcs)
        used.append(("editor", i))
        for role in ("prefilter", "cpu", "validator"):
            i, ref = self.pools[role].call("process_first", ref, srcs)
            used.append((role, i))
        inflight[ref] = ("chain", "validator", -1, {"actors": used, "jobs": jobs})

    # -- results -------------------------------------------------------------------------------
    def _on_design(self, ref, source_queue) -> int:
        try:
            scenes, tally, usage = ray.get(ref)
        except Exception as e:  # the designer actor failed: count the requested items as failed
            t = self.funnel.tally("design")
            t.n_in += self.cfg.task.items_per_request
            t.failed[f"error:{type(e).__name__}"] += self.cfg.task.items_per_request
            return 0
        self.funnel.merge(tally)
        for u in usage:
            self.usage.add("designer", u)
        take = scenes[: max(self.cfg.task.num_scenes - self.scenes_used, 0)]
        if len(take) < len(scenes):
            self.funnel.tally("design").notes["scenes_beyond_target_unused"] += len(scenes) - len(take)
        self.scenes_used += len(take)
        for sc in take:
            source_queue.extend(source_tasks(sc, self.cfg.sources.seeds_per_prompt))
        return len(take)

    def _on_sources(self, ref) -> int:
        try:
            (sources, t_src, c_src), (sources, t_gate, c_gate) = ray.get(ref)
        except Exception as e:
            self.funnel.tally("sources").failed[f"error:{type(e).__name__}"] += self.cfg.sources.batch_size
            self.funnel.tally("sources").n_in += self.cfg.sources.batch_size
            return 0
        self.funnel.merge(t_src)
        self.funnel.merge(t_gate)
        self.scheduler.charge.remote("t2i", "sources", c_src)
        self.scheduler.charge.remote("gate", "gate", c_gate)
        fmt = self.cfg.output.image_format
        self.src_writer.write([source_row(s, fmt) for s in sources])
        keep = [s for s in sources if s.gate is not None and s.gate.keep and s.gate.stage == "gate"]
        items = []
        for s in keep:
            self.source_refs[s.source_id] = ray.put(s)
            self.jobs_left[s.source_id] = len(s.instructions) * self.cfg.edit.attempts_per_instruction
            items.append((s.source_id, [i.category for i in s.instructions]))
        if items:
            self.scheduler.add_sources.remote(items)
        return sum(len(c) for _, c in items) * self.cfg.edit.attempts_per_instruction

    def _on_attempts(self, ref, extra) -> None:
        jobs = extra["jobs"]
        try:
            attempts = ray.get(ref)
        except Exception as e:  # an actor of the chain died: every job of the batch is a counted failure
            reason = f"error:{type(e).__name__}"
            t = self.funnel.tally("edit")
            t.n_in += len(jobs)
            t.failed[reason] += len(jobs)
            self.scheduler.complete_batch.remote([(j.attempt_id, {}, None) for j in jobs])
            self._forget_sources(j.source_id for j in jobs)
            return
        fmt, keep_img = self.cfg.output.image_format, self.cfg.output.attempt_images
        rows, done = [], []
        for a in attempts:
            self.funnel.add_attempt_verdicts(a.verdicts)
            if a.usage:
                self.usage.add("validator", a.usage)
            rows.append(attempt_row(a, fmt, keep_img))
            costs = {st: (STAGE_ROLE[st], s) for st, s in a.gpu_seconds.items()}
            pv = next((v for v in a.verdicts if v.stage == "prefilter"), None)
            vv = next((v for v in a.verdicts if v.stage == "validate"), None)
            result = {
                "category": a.instruction.category,
                "prefilter_pass": bool(pv and pv.keep),
                "validator_pass": bool(vv and vv.keep),
                "reason": a.last.reason if a.last else None,
                "score": rows[-1]["score"],
            }
            done.append((a.job.attempt_id, costs, result))
        self.att_writer.write(rows)
        self.scheduler.complete_batch.remote(done)
        self._forget_sources(j.source_id for j in jobs)

    def _forget_sources(self, source_ids) -> None:
        """Drop the driver's reference to a source image once all its jobs are done."""
        for sid in source_ids:
            self.jobs_left[sid] -= 1
            if self.jobs_left[sid] <= 0:
                self.source_refs.pop(sid, None)
                del self.jobs_left[sid]


def _photo_stage():
    from nhr_ray.stages.photos import PhotoSourceStage

    return PhotoSourceStage


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


__all__ = ["Miner", "Verdict", "write_json"]
