"""Stages 8b-11 after the streaming phase: best-of selection, inversion, composition and backward
consistency, read back from the attempts and sources shards (and the answers earlier runs of these
stages recorded: finalize_state.py), written to staged shards that replace the published ones at once.

Memory stays bounded: only (pair, attempt, score) columns are read to pick the winners; then the
winners' rows and their sources' rows are split by a hash of source_id into buckets on disk, and each
bucket (every kept edit of a source together, as composition needs) is processed on its own.
Triplets are typed records (io/rows.py TripletRow) from the moment they are built (select, invert,
compose) to the row written; each says where its scores come from (`score_source`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from nhr_ray.io.rows import TripletRow
from nhr_ray.io.store import Store
from nhr_ray.records import stable_hash
from nhr_ray.runtime import finalize_state
from nhr_ray.runtime.pool import Pool
from nhr_ray.runtime.finalize_state import Answers
from nhr_ray.stages.compose import compose_source
from nhr_ray.stages import table
from nhr_ray.stages.base import StageResult
from nhr_ray.stages.consistency import apply_consistency, judged
from nhr_ray.stages.inversion import inverse_triplet
from nhr_ray.stages.select import forward_triplet, select_best

WINNERS_PER_BUCKET = 4000


def _bucket_files(store: Store, paths: list[str], keep: Any, key: str, n: int, work: Path, prefix: str) -> list[Path]:
    """Copy rows whose `key` is in `keep` into n local bucket files by hash(source_id)."""
    outs = [work / f"{prefix}-{b:04d}.parquet" for b in range(n)]
    writers: dict[int, pq.ParquetWriter] = {}
    for p in paths:
        f = store.parquet(p)
        for batch in f.iter_batches(batch_size=512):
            t = pa.Table.from_batches([batch])
            mask = pa.array([v in keep for v in t.column(key).to_pylist()])
            t = t.filter(mask)
            if t.num_rows == 0:
                continue
            buckets = [stable_hash(s) % n for s in t.column("source_id").to_pylist()]
            for b in set(buckets):
                sub = t.filter(pa.array([x == b for x in buckets]))
                if b not in writers:
                    writers[b] = pq.ParquetWriter(outs[b], t.schema)
                writers[b].write_table(sub)
    for w in writers.values():
        w.close()
    return outs


def _map(pool: Pool, items: list, batch: int, *args) -> list[StageResult]:
    """The pool's stage on every batch of `items` (and `args`), in order."""
    calls = [pool.run(items[k : k + batch], *args) for k in range(0, len(items), batch)]
    out = []
    for i, ref in calls:
        out.append(ray.get(ref)[-1])
        pool.done(i)
    return out


class _Pools:
    """The inverter and validator pools, started on first use (a finalize whose answers are all
    recorded starts none). The validator's serves consistency and composition.rescore."""

    def __init__(self, cfg, run_name: str):
        self.cfg, self.run_name, self.made = cfg, run_name, {}

    def get(self, stage: str) -> Pool:
        """The pool of a final stage of the table (its role's actors, GPUs and CPUs)."""
        if stage not in self.made:
            spec = table.spec(stage)
            rc = self.cfg.role(spec.role)
            self.made[stage] = Pool(spec.role, spec.load(self.cfg), self.cfg, rc.actors, rc.num_gpus, rc.num_cpus,
                                    f"{self.run_name}-{stage}")  # fmt: skip
        return self.made[stage]

    def shutdown(self) -> None:
        for p in self.made.values():
            p.shutdown()


def _invert(cfg, pools: _Pools, answers: Answers, recorded: dict, forwards: list[TripletRow], funnel, usage) -> dict[str, str]:
    """Forward sample_id -> inverse instruction; recorded answers are reused, the rest asked for and recorded."""
    new = [f for f in forwards if ("inversion", f.attempt_id) not in recorded]
    got = {}
    if new:
        by_id = {f.sample_id: f for f in new}
        slim = [{"sample_id": f.sample_id, "prompt": f.prompt, "edit_instruction": f.edit_instruction} for f in new]
        for r in _map(pools.get("inversion"), slim, cfg.inversion.batch_size):
            for f, text, v, u in r.rows:
                got[f["sample_id"]] = (by_id[f["sample_id"]], text, v, u)
        answers.record("inversion", list(got.values()))
    out = {}
    for f in forwards:
        _, text, v, u = got.get(f.sample_id) or (f, *recorded[("inversion", f.attempt_id)])
        funnel.tally("inversion").add(v)
        if u:
            usage.add("inverter", u)
        if text is not None:
            out[f.sample_id] = text
    return out


def _judge(cfg, pools: _Pools, answers: Answers, recorded: dict, purpose: str, triplets: list[TripletRow], usage) -> dict:
    """Sample_id -> the validator's verdict, for 'consistency' (inverses, recorded by their forward's
    attempt) or 'rescore' (compositions, recorded by lineage); recorded answers are reused."""
    key = (lambda t: t.lineage) if purpose == "rescore" else (lambda t: t.attempt_id)
    new = [t for t in triplets if (purpose, key(t)) not in recorded]
    got = {}
    if new:
        for r in _map(pools.get("consistency"), new, cfg.validation.batch_size, purpose):
            for sid, v, u in r.rows:
                got[sid] = (v, u)
        answers.record(purpose, [(t, key(t) if purpose == "rescore" else None, *got[t.sample_id]) for t in new])
    out = {}
    for t in triplets:
        v, u = got.get(t.sample_id) or recorded[(purpose, key(t))][1:]
        if u:
            usage.add("validator", u)
        out[t.sample_id] = v
    return out


def _rescore(cfg, pools: _Pools, answers: Answers, recorded: dict, composed: list[TripletRow], funnel, usage) -> list[TripletRow]:
    """composition.rescore: the compositions the validator passes, carrying its scores; the others
    counted in the 'rescore' tally by reason."""
    verdicts = _judge(cfg, pools, answers, recorded, "rescore", composed, usage)
    tally, kept = funnel.tally("rescore"), []
    for c in composed:
        tally.add(verdicts[c.sample_id])
        if verdicts[c.sample_id].keep:
            kept.append(judged(c, verdicts[c.sample_id], "validation"))
    return kept


def _compose(cfg, forwards: list[TripletRow], inverses: dict[str, str], pinned: dict[str, set[str]], seed: int,
             skipped=None) -> list[TripletRow]:  # fmt: skip
    """Every source's compositions; under composition.max_per_source those published stay among them."""
    per_source = defaultdict(list)
    for f in forwards:
        per_source[f.source_id].append(f)
    cap, out = cfg.composition.max_per_source, []
    for sid in sorted(per_source):
        every = compose_source(per_source[sid], inverses, seed, None, skipped)
        if cap is not None:
            old = pinned.get(sid, set())
            every = ([c for c in every if c.lineage in old] + [c for c in every if c.lineage not in old])[:cap]
        out += every
    return out


def _winners(store: Store, att_paths: list[str], funnel, pinned: dict[str, str]) -> dict[str, dict]:
    """Best-of over every validated attempt; a pair whose forward was published keeps that winner."""
    cols = ["pair_id", "attempt_id", "source_id", "attempt_index", "adherence", "aesthetics", "kept"]
    validated = []
    for p in att_paths:
        validated.extend(r for r in store.read_table(p, columns=cols).to_pylist() if r["kept"])
    winners = select_best(validated)
    if pinned:
        by_attempt = {r["attempt_id"]: r for r in validated}
        winners.update({pair: by_attempt[a] for pair, a in pinned.items() if a in by_attempt})
    t = funnel.tally("best_of")
    t.keep(len(winners))
    t.drop("not_best_of_pair", len(validated) - len(winners))
    return winners


def _triplets(cfg, pools: _Pools, answers: Answers, recorded: dict, forwards: list[TripletRow], pinned_comp: dict,
              funnel, usage, counts: dict) -> list[TripletRow]:  # fmt: skip
    """One bucket's triplets: its forwards, their inverses and compositions, after consistency."""
    invert, seed = cfg.inversion.enabled, cfg.seed
    counts["forward"] += len(forwards)
    triplets = list(forwards)
    inverses = _invert(cfg, pools, answers, recorded, forwards, funnel, usage) if invert and forwards else {}
    if inverses:
        by_id = {f.sample_id: f for f in forwards}
        inv_rows = [inverse_triplet(by_id[k], v, seed) for k, v in sorted(inverses.items(), key=lambda kv: by_id[kv[0]].attempt_id)]
        counts["inverse"] += len(inv_rows)
        triplets += inv_rows
    if cfg.composition.enabled and inverses:
        composed = _compose(cfg, forwards, inverses, pinned_comp, seed, funnel.tally("composition").notes)
        funnel.tally("composition").keep(len(composed))
        if cfg.composition.rescore and composed:
            n = len(composed)
            composed = _rescore(cfg, pools, answers, recorded, composed, funnel, usage)
            counts["composed_not_rescored"] += n - len(composed)
        counts["composed"] += len(composed)
        triplets += composed
    if invert and cfg.consistency.enabled:
        inv_rows = [t for t in triplets if t.kind == "inverse"]
        verdicts = _judge(cfg, pools, answers, recorded, "consistency", inv_rows, usage)
        triplets, tally = apply_consistency(triplets, verdicts)
        funnel.merge(tally)
    for tr in triplets:
        counts[f"final_{tr.kind}"] += 1
    return triplets


def finalize(cfg, store: Store, funnel, usage, run_name: str = "nhr") -> dict[str, int]:
    """Deterministic over the record and the recorded answers: run again after a crash, or over a
    larger record, it keeps every published triplet (finalize_state.py) and replaces the shards at once."""
    writer = finalize_state.start(store, cfg.output.shard_rows)
    pinned, pinned_comp = finalize_state.published(store)
    answers = Answers(store)
    work = Path(tempfile.mkdtemp(prefix="nhr-finalize-"))
    seed = cfg.seed
    att_paths = store.glob("data", "attempts-")
    winners = _winners(store, att_paths, funnel, pinned)
    win_ids = {r["attempt_id"] for r in winners.values()}
    src_ids = {r["source_id"] for r in winners.values()}
    n_buckets = max(1, math.ceil(len(winners) / WINNERS_PER_BUCKET))
    win_files = _bucket_files(store, att_paths, win_ids, "attempt_id", n_buckets, work, "winners")
    src_files = _bucket_files(store, store.glob("data", "sources-"), src_ids, "source_id", n_buckets, work, "sources")
    ans_files = _bucket_files(store, answers.paths(), win_ids, "attempt_id", n_buckets, work, "answers")
    pools = _Pools(cfg, run_name)
    counts = defaultdict(int)
    try:
        for wf, sf, af in zip(win_files, src_files, ans_files):
            if not wf.exists():
                continue
            sources = {r["source_id"]: r for r in pq.read_table(sf).to_pylist()}
            recorded = Answers.load(pq.read_table(af).to_pylist()) if af.exists() else {}
            forwards = sorted((forward_triplet(w, sources[w["source_id"]], seed) for w in pq.read_table(wf).to_pylist()),
                              key=lambda f: f.attempt_id)
            triplets = _triplets(cfg, pools, answers, recorded, forwards, pinned_comp, funnel, usage, counts)
            writer.write([tr.to_row() for tr in triplets])
        finalize_state.publish(store, writer)
    finally:
        pools.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    funnel.counts["best-of selection"] = counts["forward"]
    funnel.counts["inversion"] = counts["forward"] + counts["inverse"]
    funnel.counts["composition"] = counts["forward"] + counts["inverse"] + counts["composed"]
    funnel.counts["backward consistency"] = sum(v for k, v in counts.items() if k.startswith("final_"))
    return dict(counts)
