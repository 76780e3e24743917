"""TEST ONLY: the figures a wiring fault (testing/faults.py) must move, read from a finished simulated
run's folder with the simulation's oracle (backends/sim/oracle.py: the truth decoded from the
images written; no stage ever reads it). Shared by tests/test_wiring_faults.py and
benchmarks/wiring_faults.py.

    at_validator         attempts that reached the hard validator
    validated            attempts it kept (the funnel's 'hard validation' row)
    pass_share           validated / at_validator
    validated_precision  share of the validated truly clean: the validator's own precision
    junk_at_validator    attempts that reached the validator although nothing, noise or an image of
                         another size is all their edit is (what the low-level check exists to stop)
    at_threshold         attempts the validator scored exactly on a validation threshold, on either axis
    triplets             triplets by kind before backward consistency (forward, inverse, composed) and
                         after it (final_forward, final_inverse, final_composed)
    inverse_kept_share   final_inverse / inverse: the inverses backward consistency keeps
    final_precision      the final triplets' true precision by kind (oracle.run_precision)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

JUNK = ("no_change", "scattered_noise", "off_size")
ATTEMPT_COLUMNS = ["source_id", "edit_instruction", "kept", "validation_reason", "adherence", "aesthetics", "edited_image"]


def figures(run_dir: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    from nhr_ray.backends.sim.oracle import run_precision, true_outcome
    from nhr_ray.io.shards import iter_rows
    from nhr_ray.io.store import Store

    store = Store(str(run_dir))
    sources = {r["source_id"]: r["image"]["bytes"] for r in iter_rows(store, "sources", ["source_id", "image"]) if r["image"]}
    v = manifest["config"]["validation"]
    thresholds = (v["min_adherence"], v["min_aesthetics"])
    reached = validated = clean = junk = at = 0
    for r in iter_rows(store, "attempts", ATTEMPT_COLUMNS):
        if r["validation_reason"] is None:  # never reached the validator
            continue
        reached += 1
        at += r["adherence"] in thresholds or r["aesthetics"] in thresholds
        if r["edited_image"] is None:  # an unreadable answer: no score, no image kept
            continue
        outcome = true_outcome(sources[r["source_id"]], r["edited_image"]["bytes"], r["edit_instruction"])
        junk += outcome in JUNK
        if r["kept"]:
            validated += 1
            clean += outcome == "clean"
    n = manifest["triplets"]
    return {
        "at_validator": reached,
        "validated": validated,
        "pass_share": _share(validated, reached),
        "validated_precision": _share(clean, validated),
        "junk_at_validator": junk,
        "at_threshold": at,
        "triplets": n,
        "inverse_kept_share": _share(n.get("final_inverse", 0), n.get("inverse", 0)),
        "final_precision": run_precision(run_dir),
    }


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def faulted_run(cfg, out: str | Path, fault: str | None, address: str) -> dict[str, Any]:
    """`cfg` run into `out` as its own Ray job on the cluster at `address`, with `fault` injected
    (None: clean), and its figures. The job's runtime environment carries the fault to its workers
    (runtime/cluster.py), so runs with different faults can share one cluster."""
    import ray

    from nhr_ray.runtime.pipeline import run
    from nhr_ray.testing.faults import ENV

    if ray.is_initialized():
        raise RuntimeError("faulted_run starts its own Ray job: disconnect first")
    if fault:
        os.environ[ENV] = fault
    try:
        res = run(cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"address": address})}), out)
    finally:
        os.environ.pop(ENV, None)
        ray.shutdown()
    if res["manifest"].get("test_fault") != fault:
        raise RuntimeError(f"the run recorded test_fault={res['manifest'].get('test_fault')!r}, not {fault!r}")
    notes = {f"{st}:{k}": n for st, row in res["funnel"]["stages"].items() for k, n in (row.get("notes") or {}).items()
             if k.startswith("TEST_FAULT_")}  # fmt: skip
    return figures(out, res["manifest"]) | {"fault": fault, "fault_notes": notes, "seed": cfg.seed,
                                            "wall_s": round(res["manifest"]["wall_seconds"], 1)}  # fmt: skip
