"""`--format curriculum`: how hard each instruction was for the editor, from the attempts table.

For every (source, instruction) pair: attempts run, validator-passing attempts (`kept`), attempts
per success, and the 1-based index of the first success. Per category the same summed. Difficulty of
a pair is (attempts + 1) / (successes + 1), attempts per success smoothed so that a pair with no
success ranks hardest and never divides by zero. A triplet inherits the difficulty of the pair it was
mined from (an inverse from its forward twin, a composition from the harder of its two edits), and
`triplet_order.parquet` lists the triplets from easiest to hardest. Only id and count columns are
read (no images); per-pair counters are the only state, a few dozen bytes per pair."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def difficulty(attempts: int, successes: int) -> float:
    return (attempts + 1) / (successes + 1)


def lineage_pairs(lineage: str) -> list[str]:
    """'S1.n0.i2.m1' | 'inv:S1.n0.i2.m1' | 'comp:a|b' -> the pair ids it was mined from."""
    body = lineage.split(":", 1)[1] if ":" in lineage else lineage
    return [a.rpartition(".m")[0] for a in body.split("|") if a]


def export_curriculum(run, out: Path) -> dict[str, Any]:
    pairs: dict[str, dict[str, Any]] = {}
    for b in run.batches("attempts", ["pair_id", "attempt_index", "edit_instruction", "category", "kept"], 4096):
        for r in b.to_pylist():
            p = pairs.get(r["pair_id"])
            if p is None:
                p = pairs[r["pair_id"]] = {"pair_id": r["pair_id"], "edit_instruction": r["edit_instruction"],
                                           "category": r["category"], "attempts": 0, "successes": 0, "first_success_at": None}  # fmt: skip
            p["attempts"] += 1
            if r["kept"]:
                p["successes"] += 1
                at = r["attempt_index"] + 1
                p["first_success_at"] = at if p["first_success_at"] is None else min(p["first_success_at"], at)
    for p in pairs.values():
        p["attempts_per_success"] = p["attempts"] / p["successes"] if p["successes"] else None
        p["difficulty"] = difficulty(p["attempts"], p["successes"])
    inst = sorted(pairs.values(), key=lambda p: (p["difficulty"], p["pair_id"]))
    pq.write_table(pa.Table.from_pylist(inst), out / "instructions.parquet")

    cats: dict[str, dict[str, Any]] = defaultdict(lambda: {"pairs": 0, "attempts": 0, "successes": 0, "pairs_with_success": 0})
    for p in inst:
        c = cats[p["category"]]
        c["pairs"] += 1
        c["attempts"] += p["attempts"]
        c["successes"] += p["successes"]
        c["pairs_with_success"] += p["successes"] > 0
    crows = [{"category": k, **c, "attempts_per_success": c["attempts"] / c["successes"] if c["successes"] else None,
              "pair_success_rate": c["pairs_with_success"] / c["pairs"], "difficulty": difficulty(c["attempts"], c["successes"])}
             for k, c in cats.items()]  # fmt: skip
    crows.sort(key=lambda c: (c["difficulty"], c["category"]))
    pq.write_table(pa.Table.from_pylist(crows), out / "categories.parquet")

    order, unknown = [], 0
    for b in run.batches("triplets", ["sample_id", "kind", "category", "lineage"], 4096):
        for r in b.to_pylist():
            ds = [pairs[p]["difficulty"] for p in lineage_pairs(r["lineage"] or "") if p in pairs]
            unknown += not ds
            order.append({**{k: r[k] for k in ("sample_id", "kind", "category")}, "difficulty": max(ds) if ds else None})
    order.sort(key=lambda r: (r["difficulty"] is None, r["difficulty"] or 0.0, r["sample_id"]))
    for i, r in enumerate(order):
        r["rank"] = i
    pq.write_table(pa.Table.from_pylist(order, schema=pa.schema([("sample_id", pa.string()), ("kind", pa.string()),
                   ("category", pa.string()), ("difficulty", pa.float64()), ("rank", pa.int64())])), out / "triplet_order.parquet")  # fmt: skip
    summary = {"pairs": len(inst), "triplets": len(order), "triplets_without_pair": unknown, "categories": crows}
    (out / "curriculum.json").write_text(json.dumps(summary, indent=2))
    return {"subsets": {}, **{k: v for k, v in summary.items() if k != "categories"}}
