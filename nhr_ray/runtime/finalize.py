"""Stages 8b-11 after the streaming phase: best-of selection, inversion, composition and backward
consistency, read back from the attempts and sources shards.

Memory stays bounded: only (pair, attempt, score) columns are read to pick the winners; then the
winners' rows and their sources' rows are split by a hash of source_id into buckets on disk, and each
bucket (every kept edit of a source together, as composition needs) is processed on its own.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from nhr_ray.io.shards import TRIPLETS_SCHEMA, ShardWriter
from nhr_ray.io.store import Store
from nhr_ray.records import geometric_score, sample_id, stable_hash
from nhr_ray.runtime.actors import Pool
from nhr_ray.stages.compose import compose_source
from nhr_ray.stages.consistency import ConsistencyStage, apply_consistency
from nhr_ray.stages.design import classify_instruction
from nhr_ray.stages.invert import InvertStage
from nhr_ray.stages.select import select_best

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


def _forward(w: dict, s: dict, run_seed: int) -> dict:
    aid = w["attempt_id"]
    truth = json.loads(w["sim_truth"]) if w.get("sim_truth") else None
    return {
        "sample_id": sample_id(run_seed, "forward", aid),
        "kind": "forward",
        "source_image": s["image"],
        "edited_image": w["edited_image"],
        "edit_instruction": w["edit_instruction"],
        "category": w["category"],
        "style": s["style"],
        "img_width": s["img_width"],
        "img_height": s["img_height"],
        "adherence": w["adherence"],
        "aesthetics": w["aesthetics"],
        "score": geometric_score(w["adherence"], w["aesthetics"]),
        "prompt": s["prompt"],
        "source_seed": s["source_seed"],
        "edit_seed": w["edit_seed"],
        "parents": [],
        "lineage": aid,
        "source_id": s["source_id"],
        "attempt_id": aid,
        "_truth": truth,
    }


def _inverse(f: dict, text: str, run_seed: int) -> dict:
    truth = f.get("_truth")
    sim = None
    if truth is not None:
        ok = truth.get("outcome") == "clean" and truth.get("feasible", True)
        sim = {"inverse_of": "clean" if ok else truth.get("outcome")}
    return {
        **f,
        "sample_id": sample_id(run_seed, "inverse", f["attempt_id"]),
        "kind": "inverse",
        "source_image": f["edited_image"],
        "edited_image": f["source_image"],
        "edit_instruction": text,
        "category": classify_instruction(text),
        "parents": [f["sample_id"]],
        "lineage": f"inv:{f['attempt_id']}",
        "_sim_truth": sim,
    }


def _map(pool: Pool, method: str, items: list, batch: int) -> list:
    refs = []
    for k in range(0, len(items), batch):
        i, ref = pool.call(method, items[k : k + batch])
        refs.append((i, ref))
    out = []
    for i, ref in refs:
        out.append(ray.get(ref))
        pool.done(i)
    return out


def finalize(cfg, store: Store, funnel, usage, run_name: str = "nhr") -> dict[str, int]:
    """Deterministic: a crash here is recovered by deleting the triplet shards and running it again."""
    for p in store.glob("data", "triplets-"):
        store.delete(p)
    work = Path(tempfile.mkdtemp(prefix="nhr-finalize-"))
    seed = cfg.seed
    att_paths = store.glob("data", "attempts-")
    cols = ["pair_id", "attempt_id", "source_id", "attempt_index", "adherence", "aesthetics", "kept"]
    validated = []
    for p in att_paths:
        t = store.read_table(p, columns=cols)
        validated.extend(r for r in t.to_pylist() if r["kept"])
    winners = select_best(validated)
    t = funnel.tally("best_of")
    t.keep(len(winners))
    t.drop("not_best_of_pair", len(validated) - len(winners))
    win_ids = {r["attempt_id"] for r in winners.values()}
    src_ids = {r["source_id"] for r in winners.values()}
    n_buckets = max(1, math.ceil(len(winners) / WINNERS_PER_BUCKET))
    win_files = _bucket_files(store, att_paths, win_ids, "attempt_id", n_buckets, work, "winners")
    src_files = _bucket_files(store, store.glob("data", "sources-"), src_ids, "source_id", n_buckets, work, "sources")

    rc_inv, rc_val = cfg.role("inverter"), cfg.role("validator")
    inv_pool = (
        Pool("inverter", InvertStage, cfg, rc_inv.actors, rc_inv.num_gpus, rc_inv.num_cpus, run_name)
        if cfg.inversion.enabled
        else None
    )
    con_pool = (
        Pool("validator", ConsistencyStage, cfg, rc_val.actors, rc_val.num_gpus, rc_val.num_cpus, f"{run_name}-consistency")
        if cfg.inversion.enabled and cfg.consistency.enabled
        else None
    )
    writer = ShardWriter(store, "triplets", TRIPLETS_SCHEMA, cfg.output.shard_rows)
    counts = defaultdict(int)
    try:
        for wf, sf in zip(win_files, src_files):
            if not wf.exists():
                continue
            sources = {r["source_id"]: r for r in pq.read_table(sf).to_pylist()}
            forwards = sorted((_forward(w, sources[w["source_id"]], seed) for w in pq.read_table(wf).to_pylist()),
                              key=lambda f: f["attempt_id"])
            counts["forward"] += len(forwards)
            triplets = list(forwards)
            inverses: dict[str, str] = {}
            if inv_pool is not None and forwards:
                for rows, tally, u in _map(inv_pool, "process", [{k: f[k] for k in ("sample_id", "prompt", "edit_instruction")} for f in forwards], cfg.inversion.batch_size):
                    funnel.merge(tally)
                    for x in u:
                        usage.add("inverter", x)
                    for f, text, _v in rows:
                        if text is not None:
                            inverses[f["sample_id"]] = text
                by_id = {f["sample_id"]: f for f in forwards}
                inv_rows = [_inverse(by_id[k], v, seed) for k, v in sorted(inverses.items(), key=lambda kv: by_id[kv[0]]["attempt_id"])]
                counts["inverse"] += len(inv_rows)
                triplets += inv_rows
            if cfg.composition.enabled and inverses:
                per_source = defaultdict(list)
                for f in forwards:
                    per_source[f["source_id"]].append(f)
                composed = []
                for sid in sorted(per_source):
                    composed += compose_source(per_source[sid], inverses, seed, cfg.composition.max_per_source)
                funnel.tally("composition").keep(len(composed))
                counts["composed"] += len(composed)
                triplets += composed
            if con_pool is not None:
                inv_rows = [t for t in triplets if t["kind"] == "inverse"]
                verdicts = {}
                for v, u in _map(con_pool, "process", inv_rows, cfg.validation.batch_size):
                    verdicts.update(v)
                    for x in u:
                        usage.add("validator", x)
                triplets, tally = apply_consistency(triplets, verdicts)
                funnel.merge(tally)
            for tr in triplets:
                tr.pop("_truth", None)
                tr.pop("_sim_truth", None)
                counts[f"final_{tr['kind']}"] += 1
            writer.write(triplets)
    finally:
        writer.close()
        for p in (inv_pool, con_pool):
            if p is not None:
                p.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    funnel.counts["best-of selection"] = counts["forward"]
    funnel.counts["inversion"] = counts["forward"] + counts["inverse"]
    funnel.counts["composition"] = counts["forward"] + counts["inverse"] + counts["composed"]
    funnel.counts["backward consistency"] = sum(v for k, v in counts.items() if k.startswith("final_"))
    return dict(counts)
