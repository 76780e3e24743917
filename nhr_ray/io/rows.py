"""Records -> Parquet rows (the column contract of sources-, attempts- and triplets-*.parquet)."""

from __future__ import annotations

import json
from typing import Any

from nhr_ray.io.images import encode, image_struct
from nhr_ray.records import Attempt, Source, geometric_score

ATTEMPT_STAGES = ("edit", "prefilter", "lowlevel", "validate")


def _truth_json(t: dict | None, drop: tuple[str, ...] = ()) -> str | None:
    if t is None:
        return None
    return json.dumps({k: v for k, v in t.items() if k not in drop}, default=str)


def source_row(s: Source, fmt: str) -> dict[str, Any]:
    g = s.gate
    return {
        "source_id": s.source_id,
        "scene_id": s.scene_id,
        "prompt": s.prompt,
        "style": s.style,
        "source_seed": s.seed,
        "img_width": s.width,
        "img_height": s.height,
        "instructions": [i.text for i in s.instructions],
        "categories": [i.category for i in s.instructions],
        "image": image_struct(encode(s.image, fmt) if s.image is not None else None, f"{s.source_id}.{fmt}"),
        "verdict_stage": g.stage if g else None,
        "gate_keep": bool(g.keep) if g else None,
        "gate_outcome": g.outcome if g else None,
        "gate_reason": g.reason if g else None,
        "gate_raw": g.raw if g else None,
        "gpu_seconds": s.gpu_seconds,
        "sim_truth": _truth_json(s.sim_truth),
    }


def attempt_row(a: Attempt, fmt: str, keep_image: str) -> dict[str, Any]:
    j = a.job
    last = a.last
    row: dict[str, Any] = {
        "attempt_id": j.attempt_id,
        "pair_id": j.pair_id,
        "source_id": j.source_id,
        "instruction_index": j.instruction_index,
        "attempt_index": j.attempt_index,
        "edit_seed": j.seed,
        "edit_instruction": a.instruction.text,
        "category": a.instruction.category,
        "img_width": a.width,
        "img_height": a.height,
        "final_stage": last.stage if last else None,
        "final_outcome": last.outcome if last else None,
        "final_reason": last.reason if last else None,
        "kept": a.alive and last is not None and last.stage == "validate",
    }
    for st in ATTEMPT_STAGES:
        v = next((v for v in a.verdicts if v.stage == st), None)
        row[f"{st}_outcome"] = v.outcome if v else None
        row[f"{st}_reason"] = v.reason if v else None
        row[f"{st}_raw"] = v.raw if v else None
    row["prefilter_adherence"], row["prefilter_aesthetics"] = a.scores("prefilter")
    adh, aes = a.scores("validate")
    row["adherence"], row["aesthetics"] = adh, aes
    row["score"] = geometric_score(adh, aes) if adh is not None and aes is not None else None
    row["changed_pixels"] = a.lowlevel.get("changed_pixels")
    row["largest_component_share"] = a.lowlevel.get("largest_share")
    row["gpu_seconds"] = float(sum(a.gpu_seconds.values()))
    row["edit_meta"] = json.dumps(a.edit_meta, default=str) if a.edit_meta else None
    judged = adh is not None
    want = keep_image == "all" or (keep_image == "validated" and judged)
    row["edited_image"] = (
        image_struct(encode(a.edited, fmt), f"{j.attempt_id}.{fmt}") if want and a.edited is not None else None
    )
    row["sim_outcome"] = (a.sim_truth or {}).get("outcome")
    row["sim_truth"] = _truth_json(a.sim_truth)
    row["api_usage"] = json.dumps(a.usage, sort_keys=True) if a.usage else None
    return row
