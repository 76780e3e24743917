"""Resume: what a run recorded before a restart, read back, and the state formats it reads.

Durable record: design answers per request (state/design-NNNN.json: request, tally, usage, scenes),
sources and attempts as Parquet shards, the scheduler's checkpoint (state/scheduler.npz). A resumed
run reads them back, puts the surviving sources back in the object store, takes recorded jobs out
of the scheduler's queue (paid once, shown to its policy, never drawn again) and carries the API
spend over; what was in flight at the crash is redone. Since every outcome is a function of
(seed, id), the result is the same.

`m` below is the run's Miner (runtime/driver.py): resume fills its funnel, usage and source pins.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import ray

from nhr_ray.io.images import decode
from nhr_ray.io.shards import iter_rows
from nhr_ray.records import Instruction, Scene, Source, Verdict, geometric_score
from nhr_ray.runtime.finalize_state import recorded_usd
from nhr_ray.stages import table
from nhr_ray.stages.base import Tally

log = logging.getLogger(__name__)


def resume(m) -> tuple[dict[int, dict], set[str], set[str]]:
    """Read back what the run recorded: (design answers by request, source ids done, attempt ids done)."""
    designs = load_designs(m.store)  # request index -> saved answer
    m.restored = ray.get(m.scheduler.restored.remote())
    # sources the restored scheduler already holds (their charges are in its ledger)
    m.known = set(ray.get(m.scheduler.known_sources.remote())) if m.restored else set()
    done_sources, resumed_items = _resume_sources(m)
    if resumed_items:
        m.scheduler.add_sources.remote(resumed_items)
    done_attempts = _resume_attempts(m)
    for d in designs.values():
        m.funnel.merge(tally_from_dict("design", d["tally"]))
        for u in d["usage"]:
            m.usage.add("designer", u)
    _carry_api_spend(m)
    return designs, done_sources, done_attempts


def save_design(store, req: int, tally: Tally, usage: list, scenes: list[Scene]) -> dict:
    """state/design-NNNN.json: one design request's answer, as resume reads it back."""
    saved = {"request": req, "tally": tally.as_dict(), "usage": usage, "scenes": [scene_to_json(s) for s in scenes]}
    store.write_json(f"state/design-{req:04d}.json", saved)
    return saved


def load_designs(store) -> dict[int, dict]:
    done = {}
    for p in store.glob("state", "design-", ".json"):
        d = json.loads(store.fs.open_input_stream(p).read().decode())
        done[d["request"]] = d
    return done

def _resume_sources(m) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """Sources already written: their ids, and the surviving ones (put back in the object store)."""
    done: set[str] = set()
    items = []
    limit = m.cfg.output.max_image_pixels
    for r in iter_rows(m.store, "sources"):
        done.add(r["source_id"])
        stage = r["verdict_stage"]
        v = Verdict(stage, bool(r["gate_keep"]), r["gate_reason"], r["gate_raw"] or "", failed=r["gate_outcome"] == "failed")
        if stage == "gate":
            m.funnel.tally("sources").keep()
        m.funnel.tally(stage).add(v)
        if r["source_id"] not in m.known:
            m.scheduler.charge.remote("t2i+gate", "sources", r["gpu_seconds"] or 0.0)
        if stage == "gate" and v.keep:
            insts = [Instruction(j, t, c) for j, (t, c) in enumerate(zip(r["instructions"], r["categories"]))]
            src = Source(r["source_id"], r["scene_id"], r["prompt"], r["source_seed"], r["img_width"], r["img_height"],
                         decode(r["image"]["bytes"], limit), r["style"], insts, v, r["gpu_seconds"] or 0.0)
            m.admit(src)
            if src.source_id not in m.known:
                items.append((src.source_id, [i.category for i in insts]))
    return done, items

def _resume_attempts(m) -> set[str]:
    """Attempts already written: their verdicts back in the funnel, and the scheduler takes them out
    of its queue (restored or rebuilt), paid once and shown to its policy; never drawn again."""
    done = set()
    cols = ["attempt_id", "source_id", "gpu_seconds", "api_usage", *RESULT_COLUMNS,
            *[f"{s.name}_{x}" for s in table.attempt_stages() for x in ("outcome", "reason")]]
    recorded, calls = [], []
    for r in iter_rows(m.store, "attempts", columns=cols):
        done.add(r["attempt_id"])
        if r["api_usage"]:  # what its validator calls cost before the restart
            m.usage.add("validator", json.loads(r["api_usage"]))
        for st in (s.name for s in table.attempt_stages()):
            if r[f"{st}_outcome"] is not None:
                m.funnel.tally(st).add(Verdict(st, r[f"{st}_outcome"] == "kept", r[f"{st}_reason"],
                                                  failed=r[f"{st}_outcome"] == "failed"))
        recorded.append((r["attempt_id"], {"edit": ("editor", r["gpu_seconds"] or 0.0)}, policy_result(r)))
        m.job_done(r["source_id"])
        if len(recorded) == 5000:
            calls.append(m.scheduler.resume_done.remote(recorded))
            recorded = []
    calls.append(m.scheduler.resume_done.remote(recorded))
    ray.get(calls)
    # what a restored checkpoint counted done but the record lacks (rows lost in a shard buffer) is redone
    ray.get(m.scheduler.requeue_unrecorded.remote())
    return done

def _carry_api_spend(m) -> None:
    """A resumed run's api.max_cost_usd counts what the run spent before the restart (the
    recorded calls, the final stages' recorded answers included; calls in flight at the crash
    were paid but left no record)."""
    spent = sum(u.get("usd", 0.0) for u in m.usage.by_role.values()) + recorded_usd(m.store)
    if spent > 0 and m.cfg.api.max_cost_usd is not None:
        from nhr_ray.runtime.ratelimit import budget_scope, shared_limiter

        ledger = shared_limiter(budget_scope(), max_usd=m.cfg.api.max_cost_usd)
        ledger.settle(usd_actual=spent)
        ledger.stats()  # a call after it: the ledger has the spend before any actor asks it
        log.info("resumed: $%.4f of api.max_cost_usd=%.2f already spent", spent, m.cfg.api.max_cost_usd)


def tally_from_dict(stage: str, d: dict) -> Tally:
    t = Tally(stage, d["in"], d["kept"])
    t.dropped.update(d.get("dropped", {}))
    t.failed.update(d.get("failed", {}))
    t.notes.update(d.get("notes", {}))
    return t


def scene_to_json(s: Scene) -> dict:
    return {"scene_id": s.scene_id, "prompt": s.prompt, "style": s.style,
            "instructions": [[i.text, i.category] for i in s.instructions]}


def scene_from_json(d: dict) -> Scene:
    return Scene(d["scene_id"], d["prompt"], [Instruction(j, t, c) for j, (t, c) in enumerate(d["instructions"])], d["style"])


RESULT_COLUMNS = ("category", "prefilter_outcome", "validation_outcome", "final_reason", "prefilter_adherence",
                  "prefilter_aesthetics", "score")


def policy_result(row: dict) -> dict[str, Any]:
    """What the scheduler's policies see of an attempt, from its attempts-table row (the same whether
    the attempt just finished or is read back from the record after a restart)."""
    pre = (row["prefilter_adherence"], row["prefilter_aesthetics"])
    return {
        "category": row["category"],
        "prefilter_pass": row["prefilter_outcome"] == "kept",
        "validator_pass": row["validation_outcome"] == "kept",
        "reason": row["final_reason"],
        # the pre-filter's sqrt(adherence x aesthetics): every judged attempt has one, so policies
        # can see a run of low scores; the hard validator's is validator_score
        "score": geometric_score(*pre) if None not in pre else None,
        "validator_score": row["score"],
        "adherence": pre[0],
    }
