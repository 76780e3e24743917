"""The driver loop: streams scenes -> sources -> gate -> edit jobs through the role pools.

Every batch of work is a chain of actor calls submitted at once (Ray passes each stage's rows to the
next as object refs), so no actor waits on the driver between stages. The driver only tops up the
chains, writes finished rows to Parquet shards and feeds the scheduler; it never holds the dataset:
source images live in the object store until their jobs are done, results go to storage as they come.

Durable record and resume: design answers are saved per request (state/design-NNNN.json), sources
and attempts as Parquet shards. A resumed run reads them back, skips what is done, and redoes what
was in flight; since every outcome is a function of (seed, id), the result is the same.

Faults: a batch whose actor died is re-issued when its actors are back (Ray restarts them, on
another node if theirs is gone); after three losses its rows become counted failures. A failed
chain's results are never written, so nothing is lost silently and nothing completes twice.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from nhr_ray.io.images import decode
from nhr_ray.io.rows import source_row
from nhr_ray.io.shards import ATTEMPTS_SCHEMA, SOURCES_SCHEMA, ShardWriter, iter_rows
from nhr_ray.io.store import Store
from nhr_ray.records import Instruction, Scene, Source, Verdict, geometric_score
from nhr_ray.redact import Redactor, install_log_redaction
from nhr_ray.runtime.actors import Pool, Starter
from nhr_ray.runtime.admission import SourceAdmission, batch_estimate
from nhr_ray.runtime.autosize import Sizer, initial_counts
from nhr_ray.runtime.checkpoint_sync import CheckpointSync
from nhr_ray.runtime.elastic import Elastic
from nhr_ray.runtime.finalize_state import recorded_usd
from nhr_ray.runtime.funnel import Funnel
from nhr_ray.runtime.locality import chain_cross_node_bytes
from nhr_ray.runtime.metrics import RunMetrics
from nhr_ray.runtime.progress import Progress
from nhr_ray.scheduler.actor import SchedulerActor
from nhr_ray.scheduler.draw import Draw
from nhr_ray.scheduler.policies import make_policy
from nhr_ray.stages import table
from nhr_ray.stages.base import Tally
from nhr_ray.stages.sources import source_tasks

log = logging.getLogger(__name__)



class Usage:
    """API usage summed by role (tokens, calls, usd)."""

    def __init__(self) -> None:
        self.by_role: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))

    def add(self, role: str, usage: dict[str, float]) -> None:
        for k, v in usage.items():
            self.by_role[role][k] += float(v)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {r: dict(u) for r, u in self.by_role.items()}


def _tally_from_dict(stage: str, d: dict) -> Tally:
    t = Tally(stage, d["in"], d["kept"])
    t.dropped.update(d.get("dropped", {}))
    t.failed.update(d.get("failed", {}))
    t.notes.update(d.get("notes", {}))
    return t


def _scene_to_json(s: Scene) -> dict:
    return {"scene_id": s.scene_id, "prompt": s.prompt, "style": s.style,
            "instructions": [[i.text, i.category] for i in s.instructions]}


def _scene_from_json(d: dict) -> Scene:
    return Scene(d["scene_id"], d["prompt"], [Instruction(j, t, c) for j, (t, c) in enumerate(d["instructions"])], d["style"])


class Miner:
    """One run's streaming phase (stages 1-8). `finalize.py` does best-of, inversion, composition and
    backward consistency afterwards from what this wrote."""

    def __init__(self, cfg, store: Store, run_name: str = "nhr"):
        self.cfg = cfg
        self.store = store
        self.redact = Redactor(cfg)
        install_log_redaction(self.redact)  # the driver's log records never carry a key
        self.funnel = Funnel()
        self.usage = Usage()
        self.run_name = run_name
        self.metrics = RunMetrics(run_name)
        self.progress = Progress(cfg.output.progress)
        self.src_writer = ShardWriter(store, "sources", SOURCES_SCHEMA, cfg.output.shard_rows)
        self.att_writer = ShardWriter(store, "attempts", ATTEMPTS_SCHEMA, cfg.output.shard_rows)
        self.retried: collections.Counter = collections.Counter()
        self.reissued = 0
        self.sizer: Sizer | Elastic | None = None  # whatever changes pool sizes during the run
        self.locality = {"cross_node_bytes": 0, "attempts": 0}
        self.src_bytes: dict[str, int] = {}
        self.pinned_bytes = 0  # sum of src_bytes: source images the driver keeps in the object store
        self.n_chains = 0
        self.restored, self.known = False, set()  # resumed from the scheduler's checkpoint; sources it holds
        self.held: collections.deque = collections.deque()  # drawn jobs waiting for an editor (tail split)
        self.parked: dict[str, list] = collections.defaultdict(list)  # drawn jobs waiting for their source
        self.timeline: dict[str, float] = {}  # seconds from start_pools: pools ready, first edit, all drawn, loop end

    # -- setup ---------------------------------------------------------------------------------
    def start_pools(self) -> None:
        cfg = self.cfg
        self._t0 = time.monotonic()
        sized = initial_counts(cfg) if cfg.ray.autosize else {}

        # registered in pipeline order: with ray.max_starting_actors, sources' roles load first
        self.starter = Starter(cfg.ray.max_starting_actors) if cfg.ray.max_starting_actors else None

        # one pool per role, keyed by it; the CPU pools after the model roles' (the Starter's tie order)
        specs = sorted(table.stages("stream"), key=lambda s: s.placement == "cpu")
        self.pools = {s.role: self._pool(s, sized) for s in specs}
        s = cfg.scheduler
        self.ckpt = CheckpointSync(self.store)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # lives and dies with the driver's node; built from the config (JobScheduler.from_config). Atomic
        # checkpoints in a local file (copied to a remote --out by the driver); a resumed run continues
        # from the checkpoint (same permutation, ledger, policy state) and reconciles it with the record
        self.scheduler = SchedulerActor.options(scheduling_strategy=here).remote(run_config=cfg, checkpoint_path=self.ckpt.path)
        # jobs per pair as the policy sets them (per_category_m), so source images are let go in time
        self._attempts_for = make_policy(s.policy, s.policy_options, [], cfg.edit.attempts_per_instruction, s.unit).attempts_for
        # sources are made only while the pinned ones (and their jobs) stay within the limits
        self.admission = SourceAdmission(cfg.sources.max_pinned_bytes, cfg.sources.max_pending_jobs,
                                         batch_estimate(cfg, self._attempts_for, lambda: self.admission.largest))
        # the reserved clock: GPUs this pipeline's actors hold, from their creation (t0, on this
        # node's monotonic clock, which the scheduler pinned here shares), not from whenever the
        # scheduler's own process gets to the call
        self.scheduler.set_reserved.remote(
            {p.role: p.gpus_held() for p in self.pools.values() if p.gpus_per_actor}, self._t0
        )
        if cfg.ray.autosize:
            self.sizer = Sizer(cfg, self.pools, self.scheduler)
        elif cfg.ray.elastic:
            self.sizer = Elastic(cfg, self.pools, self.scheduler)
        # every actor loads its model now (grow() called setup()); work starts as soon as the
        # actors it needs are loaded (sources while editors still load), and a backend that fails
        # to load fails the run at once (check_start, every driver loop until all are up)
        self.driver_node = ray.get_runtime_context().get_node_id()
        self._initial = {r: len(p.actors) for r, p in self.pools.items()}
        self._all_up = False

    def _pool(self, spec, sized: dict[str, int]) -> Pool:
        """A stage's pool: a model role's (roles.<role>: actors, GPUs, CPUs) or CPU actors (ray.cpu_workers)."""
        if spec.placement == "cpu":
            return Pool(spec.role, spec.load(self.cfg), self.cfg, self.cfg.ray.cpu_workers, 0, 0.5, self.run_name, self.starter)
        rc = self.cfg.role(spec.role)
        return Pool(spec.role, spec.load(self.cfg), self.cfg, sized.get(spec.role, rc.actors), rc.num_gpus, rc.num_cpus,
                    self.run_name, self.starter)  # fmt: skip

    def check_start(self, wait: bool = False) -> None:
        """Raise the first setup() failure among the starting actors; mark when all are up.
        wait=True blocks until every starting actor has loaded (or one failed)."""
        while not self._all_up:
            for r, p in self.pools.items():
                p.refresh_nodes()
                for k, err in p.setup_errors.items():
                    if k < self._initial[r] and p.live[k]:  # not one retired (and killed) while it loaded
                        cause = getattr(err, "cause", None) or err
                        first = (self.redact(str(cause)).strip().splitlines() or [""])[0][:300]
                        raise RuntimeError(f"roles.{r}: an actor failed to start: {type(cause).__name__}: {first}") from err
            if all(p.ready[k] or not p.live[k] for r, p in self.pools.items() for k in range(self._initial[r])):
                self._all_up = True
                self._mark("pools_ready")
            elif not wait:
                return
            else:
                if self.starter is not None:
                    self.starter.pump()
                time.sleep(0.05)

    def _mark(self, what: str) -> None:
        self.timeline.setdefault(what, round(time.monotonic() - self._t0, 2))

    def shutdown(self) -> None:
        for p in getattr(self, "pools", {}).values():
            p.shutdown()
        self.pools = {}
        if hasattr(self, "ckpt"):
            self.ckpt.close()

    # -- resume --------------------------------------------------------------------------------
    def _load_designs(self) -> dict[int, dict]:
        done = {}
        for p in self.store.glob("state", "design-", ".json"):
            d = json.loads(self.store.fs.open_input_stream(p).read().decode())
            done[d["request"]] = d
        return done

    def _resume_sources(self) -> tuple[set[str], list[tuple[str, list[str]]]]:
        """Sources already written: their ids, and the surviving ones (put back in the object store)."""
        done: set[str] = set()
        items = []
        limit = self.cfg.output.max_image_pixels
        for r in iter_rows(self.store, "sources"):
            done.add(r["source_id"])
            stage = r["verdict_stage"]
            v = Verdict(stage, bool(r["gate_keep"]), r["gate_reason"], r["gate_raw"] or "", failed=r["gate_outcome"] == "failed")
            if stage == "gate":
                self.funnel.tally("sources").keep()
            self.funnel.tally(stage).add(v)
            if r["source_id"] not in self.known:
                self.scheduler.charge.remote("t2i+gate", "sources", r["gpu_seconds"] or 0.0)
            if stage == "gate" and v.keep:
                insts = [Instruction(j, t, c) for j, (t, c) in enumerate(zip(r["instructions"], r["categories"]))]
                truth = json.loads(r["sim_truth"]) if r["sim_truth"] else None
                src = Source(r["source_id"], r["scene_id"], r["prompt"], r["source_seed"], r["img_width"], r["img_height"],
                             decode(r["image"]["bytes"], limit), r["style"], insts, v, r["gpu_seconds"] or 0.0, truth)
                self._admit(src)
                if src.source_id not in self.known:
                    items.append((src.source_id, [i.category for i in insts]))
        return done, items

    def _resume_attempts(self) -> set[str]:
        """Attempts already written: their verdicts back in the funnel, and the scheduler takes them out
        of its queue (restored or rebuilt), paid once and shown to its policy; never drawn again."""
        done = set()
        cols = ["attempt_id", "source_id", "gpu_seconds", "api_usage", *RESULT_COLUMNS,
                *[f"{s.name}_{x}" for s in table.attempt_stages() for x in ("outcome", "reason")]]
        recorded, calls = [], []
        for r in iter_rows(self.store, "attempts", columns=cols):
            done.add(r["attempt_id"])
            if r["api_usage"]:  # what its validator calls cost before the restart
                self.usage.add("validator", json.loads(r["api_usage"]))
            for st in (s.name for s in table.attempt_stages()):
                if r[f"{st}_outcome"] is not None:
                    self.funnel.tally(st).add(Verdict(st, r[f"{st}_outcome"] == "kept", r[f"{st}_reason"],
                                                      failed=r[f"{st}_outcome"] == "failed"))
            recorded.append((r["attempt_id"], {"edit": ("editor", r["gpu_seconds"] or 0.0)}, policy_result(r)))
            self._job_done(r["source_id"])
            if len(recorded) == 5000:
                calls.append(self.scheduler.resume_done.remote(recorded))
                recorded = []
        calls.append(self.scheduler.resume_done.remote(recorded))
        ray.get(calls)
        # what a restored checkpoint counted done but the record lacks (rows lost in a shard buffer) is redone
        ray.get(self.scheduler.requeue_unrecorded.remote())
        return done

    def _carry_api_spend(self) -> None:
        """A resumed run's api.max_cost_usd counts what the run spent before the restart (the
        recorded calls, the final stages' recorded answers included; calls in flight at the crash
        were paid but left no record)."""
        spent = sum(u.get("usd", 0.0) for u in self.usage.by_role.values()) + recorded_usd(self.store)
        if spent > 0 and self.cfg.api.max_cost_usd is not None:
            from nhr_ray.backends.api.common import budget_scope
            from nhr_ray.runtime.ratelimit import shared_limiter

            ledger = shared_limiter(budget_scope(), max_usd=self.cfg.api.max_cost_usd)
            ledger.settle(usd_actual=spent)
            ledger.stats()  # a call after it: the ledger has the spend before any actor asks it
            log.info("resumed: $%.4f of api.max_cost_usd=%.2f already spent", spent, self.cfg.api.max_cost_usd)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, t = self.cfg, self.cfg.task
        n_requests_needed = -(-t.num_scenes // t.items_per_request)
        max_requests = 2 * n_requests_needed + 1  # re-ask for what malformed answers lost
        self.source_refs: dict[str, ray.ObjectRef] = {}
        self.jobs_left: collections.Counter = collections.Counter()
        designs = self._load_designs()  # request index -> saved answer (resume)
        self.restored = ray.get(self.scheduler.restored.remote())
        # sources the restored scheduler already holds (their charges are in its ledger)
        self.known = set(ray.get(self.scheduler.known_sources.remote())) if self.restored else set()
        done_sources, resumed_items = self._resume_sources()
        if resumed_items:
            self.scheduler.add_sources.remote(resumed_items)
        self.done_attempts = self._resume_attempts()
        for d in designs.values():
            self.funnel.merge(_tally_from_dict("design", d["tally"]))
            for u in d["usage"]:
                self.usage.add("designer", u)
        self._carry_api_spend()
        cursor, scenes_used = 0, 0  # scenes are taken in request order, whatever order answers come in
        source_queue: collections.deque = collections.deque()
        inflight: dict[ray.ObjectRef, tuple[str, Any]] = {}
        per_actor = {s.role: 4 if s.placement == "cpu" else cfg.role(s.role).max_in_flight for s in table.stages("stream")}
        next_request = 0
        pending_jobs, exhausted, draw = 0, False, Draw()
        if cfg.sources.kind == "images":  # real photos: no design step, one source task per photo
            from nhr_ray.stages.photos import photo_tasks

            source_queue.extend(x for x in photo_tasks(cfg.sources.images, cfg.task) if f"{x[0].scene_id}.n00" not in done_sources)
            next_request = max_requests

        def advance_scenes() -> None:
            nonlocal cursor, scenes_used
            while cursor in designs and scenes_used < t.num_scenes:
                for sd in designs[cursor]["scenes"][: t.num_scenes - scenes_used]:
                    sc = _scene_from_json(sd)
                    source_queue.extend(x for x in source_tasks(sc, cfg.sources.seeds_per_prompt)
                                        if f"{sc.scene_id}.n{x[1]:02d}" not in done_sources)
                    scenes_used += 1
                cursor += 1

        advance_scenes()

        def design_done_now() -> bool:
            return (scenes_used >= t.num_scenes or next_request >= max_requests) and not source_queue and not any(
                k in ("design", "sources") for k, _ in inflight.values())

        while True:
            self.check_start()
            if self.starter is not None:
                self.starter.pump()
            # 1. design, in request order, until enough scenes (re-asking for what was lost)
            while (
                self.pools["designer"].capacity(per_actor["designer"]) > 0
                and next_request < max_requests
                and scenes_used + t.items_per_request * sum(1 for k, _ in inflight.values() if k == "design")
                + sum(len(designs[i]["scenes"]) for i in designs if i >= cursor) < t.num_scenes
                and not exhausted
            ):
                if next_request not in designs:
                    i, ref = self.pools["designer"].call("process", [next_request])
                    inflight[ref] = ("design", (i, next_request))
                next_request += 1
            # 2. sources first (cheap, and they feed the queue), chained into the gate
            # (paused while the pinned sources or the jobs not yet drawn pass sources.max_pinned_bytes /
            # max_pending_jobs: runtime/admission.py)
            while source_queue and not exhausted and self.pools["t2i"].capacity(per_actor["t2i"]) > 0 \
                    and self.pools["gate"].capacity(per_actor["gate"]) > 0:
                batch = list(itertools.islice(source_queue, cfg.sources.batch_size))
                if not self.admission.allow(batch, self.pinned_bytes, pending_jobs, bool(pending_jobs or self.n_chains or self.held)):
                    break
                for _ in batch:
                    source_queue.popleft()
                self._submit_sources(batch, inflight)
            # 3. edit chains: editor -> prefilter -> low-level (CPU) -> validator
            # editors take their next batch as soon as their part of a chain is done; chains waiting
            # downstream are bounded too (one more round per editor slot), so memory stays bounded
            # when a judge is slower than the editors
            while self.pools["editor"].capacity(per_actor["editor"]) > 0 \
                    and self.n_chains < 2 * per_actor["editor"] * self.pools["editor"].n_live:
                if self.held:  # drawn jobs split over several chains (the tail): the next share
                    self._submit_chain(self.held.popleft(), inflight)
                    continue
                if exhausted:
                    break
                draw = ray.get(self.scheduler.draw.remote(self._draw_size(pending_jobs)))
                jobs, exhausted, pending_jobs = draw.jobs, draw.exhausted, draw.pending
                for sid, n in draw.cancelled_by_source.items():  # a policy stopped pairs
                    self._job_done(sid, n)
                if not jobs:
                    if pending_jobs == 0 and design_done_now():
                        self._mark("all_drawn")
                    break
                self._mark("first_draw")
                todo = [j for j in jobs if j.attempt_id not in self.done_attempts]
                if len(todo) < len(jobs):  # the scheduler took the record's jobs out of its queue: never expected
                    self.scheduler.skip_recorded.remote([j.attempt_id for j in jobs if j.attempt_id in self.done_attempts])
                for j in todo:  # after a restart, a source the scheduler holds may not be made again yet
                    if j.source_id not in self.source_refs:
                        self.parked[j.source_id].append(j)
                todo = [j for j in todo if j.source_id in self.source_refs]
                self.held.extend(self._tail_split(todo, pending_jobs))
            design_done = (scenes_used >= t.num_scenes or next_request >= max_requests) and not any(
                k == "design" for k, _ in inflight.values())
            if not inflight and not self.held and not self.parked and (exhausted or (design_done and not source_queue and pending_jobs == 0)):
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            if ready and len(inflight) > 1:  # take every result that is in, then top up once
                ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0)
            for ref in ready:
                kind, extra = inflight.pop(ref)
                if kind == "design":
                    self._on_design(ref, extra, designs, inflight)
                    advance_scenes()
                elif kind == "sources":
                    pending_jobs += self._on_sources(ref, extra, inflight)
                elif kind == "slot":  # an editor finished its part of a chain: it may take the next
                    self.pools[extra[0]].done(extra[1])
                else:
                    self._on_attempts(ref, extra, inflight)
            if self.sizer is not None:
                sources_closed = design_done and not source_queue and not any(k == "sources" for k, _ in inflight.values())
                if sources_closed:
                    self.sizer.close(("t2i", "gate"))
                    if (exhausted or pending_jobs == 0) and not self.held and not self.parked:  # no chain will be submitted again (bar a re-issue)
                        self.sizer.close(("editor", "prefilter", "validator"))
                self.sizer.tick(draw.stats, self._waiting(source_queue, draw.waiting_jobs(pending_jobs)))
            self.progress.update(self.funnel, draw.stats, exhausted)
            self.metrics.gauges(self.pools, draw.stats)
            self.ckpt.sync()

        self._mark("loop_end")
        self.src_writer.close()
        self.att_writer.close()
        self.progress.close()
        ray.get(self.scheduler.checkpoint.remote())  # final, atomic: <out>/state/scheduler.npz
        self.ckpt.sync()
        stats = ray.get(self.scheduler.stats.remote())
        stats["restored_from_checkpoint"] = self.restored
        self.metrics.gauges(self.pools, stats, force=True)
        return {"ledger": ray.get(self.scheduler.ledger.remote()), "scheduler": stats, "budget_exhausted": exhausted,
                "usage": self.usage.as_dict(), "reissued_batches": self.reissued,
                "pools": {r: {"actors_started": len(p.actors), "gpus_per_actor": p.gpus_per_actor}
                          for r, p in self.pools.items()},
                "rebalancing": self.sizer.events if self.sizer else [],
                "locality": dict(self.locality), "timeline": dict(self.timeline),
                "source_memory": self.admission.report()}

    def _waiting(self, source_queue, jobs: float) -> dict[str, float]:
        """Batches of work waiting per role, not yet on any of its actors (what elastic pools follow).
        The editor's: `jobs`, those the budget can still pay for (Draw.waiting_jobs)."""
        cfg = self.cfg
        src = 0.0 if self.admission.paused else len(source_queue) / cfg.sources.batch_size  # paused on purpose
        past_editor = max(0, self.n_chains - sum(self.pools["editor"].load))  # chains at a judge or the CPU check
        return {"designer": 0.0, "t2i": src, "gate": src, "editor": jobs / cfg.scheduler.batch_size,
                "prefilter": past_editor, "validator": past_editor}

    def _tail_split(self, jobs: list, pending_jobs: int) -> list[list]:
        """With pools sized by the run (autosize/elastic), once the jobs left fit in two rounds of the
        live editors, split a drawn batch (a pair's M attempts run as one editor call otherwise) so
        the last attempts spread over every editor instead of queueing on a few: a shorter tail.
        Attempts are independent (own seed each), so the split changes where they run, not what they give."""
        if self.sizer is None:
            return [jobs] if jobs else []
        return tail_chunks(jobs, pending_jobs, self.pools["editor"].n_live)

    def _draw_size(self, pending_jobs: int) -> int:
        """scheduler.batch_size; with autosize, smaller once the queue runs short, so the last jobs
        spread over every editor instead of queueing behind a few big batches (a shorter tail)."""
        n = self.cfg.scheduler.batch_size
        if self.sizer is None or pending_jobs <= 0:
            return n
        per = self.cfg.edit.attempts_per_instruction if self.cfg.scheduler.unit == "pair" else 1
        share = -(-pending_jobs // (per * 2 * max(self.pools["editor"].n_live, 1)))  # two rounds per editor
        return max(1, min(n, share))

    # -- submitting ----------------------------------------------------------------------------
    def _submit_sources(self, batch, inflight) -> None:
        i, t2i_ref = self.pools["t2i"].call("process", batch)
        j, ref = self.pools["gate"].call("process_then", t2i_ref)
        inflight[ref] = ("sources", {"batch": batch, "actors": [("t2i", i), ("gate", j)],
                                     "reserved": self.admission.reserve(batch, self.pinned_bytes)})

    def _submit_chain(self, jobs, inflight) -> None:
        srcs = {j.source_id: self.source_refs[j.source_id] for j in jobs}
        used = []
        i, ref = self.pools["editor"].call("process_first", jobs, srcs)
        used.append(("editor", i))
        inflight[ref] = ("slot", ("editor", i))  # the editor's slot frees when its part is done, not the chain's
        node = self.pools["editor"].node[i]
        for role in [s.role for s in table.attempt_stages()][1:]:  # downstream stages prefer the editor's node
            i, ref = self.pools[role].call("process_first", ref, srcs, node=node)
            used.append((role, i))
        # rows (and PNG encoding) on a CPU actor: the driver gets rows, not edited images
        k, ref = self.pools["cpu"].call("rows", ref, self.cfg.output.image_format, self.cfg.output.attempt_images, node=node)
        inflight[ref] = ("chain", {"actors": used + [("cpu", k)], "jobs": jobs})
        self.n_chains += 1
        sb = sum(self.src_bytes.get(s, 0) for s in srcs)
        eb = sum(self.src_bytes.get(j.source_id, 0) for j in jobs)  # an edit is the size of its source
        self.locality["cross_node_bytes"] += chain_cross_node_bytes(
            self.driver_node, [self.pools[r].node[k] for r, k in used], sb, eb, tail=self.pools["cpu"].node[k])
        self.locality["attempts"] += len(jobs)

    def _release(self, extra) -> None:
        for role, i in extra["actors"]:
            if role != "editor" or extra.get("jobs") is None:  # a chain's editor slot is freed by its "slot" ref
                self.pools[role].done(i)

    MAX_REISSUES = 3

    def _retry(self, key: str, err: Exception, actors: list[tuple[str, int]]) -> bool:
        """Re-issue a batch whose actor was lost, once its actors are back (Ray restarts them,
        elsewhere if their node is gone). Results of a failed chain are never written, so a job
        completes exactly once; after MAX_REISSUES losses the batch becomes counted failures."""
        if self.retried[key] >= self.MAX_REISSUES:
            return False
        self.retried[key] += 1
        self.reissued += 1
        log.warning("re-issuing %s after %s", key, type(err).__name__)
        try:
            ray.get([self.pools[r].actors[i].setup.remote() for r, i in actors], timeout=120)
        except Exception as e:  # still down: the next try will tell
            log.warning("actors of %s not back yet: %s", key, type(e).__name__)
        return True

    # -- results -------------------------------------------------------------------------------
    def _on_design(self, ref, extra, designs, inflight) -> None:
        actor, req = extra
        self.pools["designer"].done(actor)
        try:
            scenes, tally, usage = ray.get(ref)
        except Exception as e:
            if self._retry(f"design-{req}", e, [("designer", actor)]):
                i, r = self.pools["designer"].call("process", [req])
                inflight[r] = ("design", (i, req))
                return
            tally, scenes, usage = Tally("design"), [], []
            tally.n_in += self.cfg.task.items_per_request
            tally.failed[f"error:{type(e).__name__}"] += self.cfg.task.items_per_request
        saved = {"request": req, "tally": tally.as_dict(), "usage": usage, "scenes": [_scene_to_json(s) for s in scenes]}
        self.store.write_json(f"state/design-{req:04d}.json", saved)
        designs[req] = saved
        self.funnel.merge(tally)
        self.metrics.tally(tally)
        for u in usage:
            self.usage.add("designer", u)
            self.metrics.usage("designer", u)

    def _admit(self, s: Source) -> None:
        self.source_refs[s.source_id] = ray.put(s)
        nbytes = s.image.nbytes if s.image is not None else 0
        self.pinned_bytes += nbytes - self.src_bytes.get(s.source_id, 0)
        self.src_bytes[s.source_id] = nbytes
        self.admission.pinned(self.pinned_bytes, nbytes)
        self.jobs_left[s.source_id] += sum(self._attempts_for(i.category) for i in s.instructions)

    def _on_sources(self, ref, extra, inflight) -> int:
        self._release(extra)
        self.admission.release(extra["reserved"])
        try:
            (sources, t_src, c_src), (sources, t_gate, c_gate) = ray.get(ref)
        except Exception as e:
            if self._retry(f"sources-{extra['batch'][0][0].scene_id}.{extra['batch'][0][1]}", e, extra["actors"]):
                self._submit_sources(extra["batch"], inflight)
                return 0
            t = self.funnel.tally("sources")
            t.n_in += len(extra["batch"])
            t.failed[f"error:{type(e).__name__}"] += len(extra["batch"])
            return 0
        self._mark("first_sources")
        for tl in (t_src, t_gate):
            self.funnel.merge(tl)
            self.metrics.tally(tl)
        self.scheduler.charge.remote("t2i", "sources", c_src)
        self.scheduler.charge.remote("gate", "gate", c_gate)
        self.src_writer.write([source_row(s, self.cfg.output.image_format) for s in sources])
        items = []
        for s in sources:
            if s.gate is not None and s.gate.keep and s.gate.stage == "gate":
                self._admit(s)
                if s.source_id not in self.known:  # made again after a restart: its jobs are queued already
                    items.append((s.source_id, [i.category for i in s.instructions]))
        if items:
            self.scheduler.add_sources.remote(items)
        for s in sources:  # jobs drawn before their source was made again (resume from a checkpoint)
            jobs = self.parked.pop(s.source_id, None)
            if jobs and s.source_id in self.source_refs:
                self.held.append(jobs)
            elif jobs:  # made again and not kept this time: its jobs cannot run
                self._fail_jobs(jobs, "error:source_not_kept_on_resume")
        return sum(len(c) for _, c in items) * self.cfg.edit.attempts_per_instruction

    def _on_attempts(self, ref, extra, inflight) -> None:
        self._release(extra)
        self.n_chains -= 1
        jobs = extra["jobs"]
        try:
            attempts, rows = ray.get(ref)
        except Exception as e:  # an actor of the chain died
            if self._retry(f"chain-{jobs[0].attempt_id}", e, extra["actors"]):
                self._submit_chain(jobs, inflight)
                return
            self._fail_jobs(jobs, f"error:{type(e).__name__}")
            return
        if self.pools["cpu"].node[extra["actors"][-1][1]] != self.driver_node:
            self.locality["cross_node_bytes"] += sum(len(r["edited_image"]["bytes"]) for r in rows if r.get("edited_image"))
        done, stage_role = [], table.stage_role()
        for a, row in zip(attempts, rows):
            self.funnel.add_attempt_verdicts(a.verdicts)
            for v in a.verdicts:
                self.metrics.verdict(v.stage, v.outcome, v.reason)
            if a.usage:
                self.usage.add("validator", a.usage)
                self.metrics.usage("validator", a.usage)
            costs = {st: (stage_role[st], s) for st, s in a.gpu_seconds.items()}
            done.append((a.job.attempt_id, costs, policy_result(row)))
        self._mark("first_attempts")
        self.att_writer.write(rows)
        self.scheduler.complete_batch.remote(done)
        for j in jobs:
            self._job_done(j.source_id)

    def _fail_jobs(self, jobs: list, reason: str) -> None:
        """Jobs that cannot complete: counted failures of the edit stage, done for the scheduler."""
        t = self.funnel.tally("edit")
        t.n_in += len(jobs)
        t.failed[reason] += len(jobs)
        self.metrics.verdict("edit", "failed", reason, len(jobs))
        self.scheduler.complete_batch.remote([(j.attempt_id, {}, None) for j in jobs])
        for j in jobs:
            self._job_done(j.source_id)

    def _job_done(self, sid: str, n: int = 1) -> None:
        """Drop the driver's reference to a source image once all its jobs are done (or cancelled)."""
        self.jobs_left[sid] -= n
        if self.jobs_left[sid] <= 0 and sid in self.source_refs:
            del self.source_refs[sid]
            del self.jobs_left[sid]
            self.pinned_bytes -= self.src_bytes.pop(sid, 0)


RESULT_COLUMNS = ("category", "prefilter_outcome", "validate_outcome", "final_reason", "prefilter_adherence",
                  "prefilter_aesthetics", "score")


def policy_result(row: dict) -> dict[str, Any]:
    """What the scheduler's policies see of an attempt, from its attempts-table row (the same whether
    the attempt just finished or is read back from the record after a restart)."""
    pre = (row["prefilter_adherence"], row["prefilter_aesthetics"])
    return {
        "category": row["category"],
        "prefilter_pass": row["prefilter_outcome"] == "kept",
        "validator_pass": row["validate_outcome"] == "kept",
        "reason": row["final_reason"],
        # the pre-filter's sqrt(adherence x aesthetics): every judged attempt has one, so policies
        # can see a run of low scores; the hard validator's is validator_score
        "score": geometric_score(*pre) if None not in pre else None,
        "validator_score": row["score"],
        "adherence": pre[0],
    }


def tail_chunks(jobs: list, pending_jobs: int, editors: int) -> list[list]:
    """One chain of all `jobs`, unless the jobs left (drawn now + still pending) fit in two rounds
    of `editors`: then chains of ceil(left / (2 x editors)) jobs, so the last ones spread out."""
    if not jobs:
        return []
    editors = max(editors, 1)
    left = pending_jobs + len(jobs)
    if left >= 2 * editors * len(jobs):
        return [jobs]
    size = max(1, -(-left // (2 * editors)))
    return [jobs[k : k + size] for k in range(0, len(jobs), size)]

