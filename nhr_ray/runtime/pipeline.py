"""One mining run, end to end: validate, connect, mine (stages 1-8), finalize (8b-11), report."""

from __future__ import annotations

import importlib.metadata as md
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from nhr_ray.config import RunConfig
from nhr_ray.roles import ROLE_KINDS, backend_class
from nhr_ray.runtime.cluster import check_capacity, connect, release_capacity
from nhr_ray.io.shards import iter_rows
from nhr_ray.runtime.driver import Miner
from nhr_ray.runtime.finalize import finalize
from nhr_ray.runtime.funnel import format_table
from nhr_ray.runtime.outdir import NothingToDo, Output, RunError, now, open_output, prepare
from nhr_ray.runtime.ratelimit import close_spend_ledger, open_spend_ledger
from nhr_ray.stages import table
from nhr_ray.testing import faults

__all__ = ["NothingToDo", "RunError", "open_output", "preflight", "run"]

log = logging.getLogger(__name__)

PACKAGES = ["nhr-ray", "ray", "numpy", "pyarrow", "pydantic", "opencv-python-headless", "torch", "diffusers",
            "transformers", "vllm", "openai", "google-genai"]  # fmt: skip


def versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def preflight(cfg: RunConfig) -> None:
    from nhr_ray.roles import BackendContext, BackendUnavailable

    for role in ROLE_KINDS:
        rc = cfg.role(role)
        judges = cfg.validator_judges() if role == "validator" and cfg.judging.ensemble else [None]
        for j in judges:  # the validator's ensemble: each judge's backend
            name, options = (rc.backend, rc.options) if j is None else (j.backend, j.options)
            cls = backend_class(role, name)
            ctx = BackendContext(role=role, run_seed=cfg.seed, num_gpus=rc.num_gpus, sim=cfg.sim, run_config=cfg,
                                 judge=j.name if j else None)  # fmt: skip
            try:
                cls.preflight(cls.Options.model_validate(options), ctx)
            except BackendUnavailable as e:
                where = f"roles.{role}.backend={name}" if j is None else f"judging.ensemble.judges[{j.name}].backend={name}"
                raise RunError(f"{where}: {e}") from None


def model_names(cfg: RunConfig) -> dict[str, str]:
    out = {}
    for spec in table.funnel_rows():
        if spec.placement != "gpu":  # no model role: how the stage decides
            out[spec.funnel_row] = spec.model
            continue
        rc = cfg.role(spec.role)
        if spec.role == "validator" and cfg.judging.ensemble:
            judges = ", ".join(f"{j.name}={j.backend}{':' + j.options['model'] if j.options.get('model') else ''}"
                               for j in cfg.validator_judges())  # fmt: skip
            out[spec.funnel_row] = f"ensemble ({cfg.judging.ensemble.combine}): {judges}"
            continue
        model = rc.options.get("model") if isinstance(rc.options, dict) else None
        out[spec.funnel_row] = f"{rc.backend}:{model}" if model else rc.backend
    return out


def _mine(cfg, output: Output, run_name: str, watch=None) -> tuple[Miner, dict[str, Any], dict[str, int]]:
    """Stages 1-8, then 8b-11, on the cluster already joined."""
    ledger = open_spend_ledger(cfg)  # noqa: F841  (held: an owned actor lives as long as a handle to it)
    check_capacity(cfg)
    output.commit()  # from here on the folder holds this run (a start that fails before data is undone)
    prepare(output)
    miner = Miner(cfg, output.store, run_name)
    try:
        if watch is not None:
            watch.started(miner)
        miner.start_pools()
        mined = miner.run()
        if watch is not None:
            watch.mined(miner)
        miner.shutdown()
        counts = finalize(cfg, output.store, miner.funnel, miner.usage, run_name)
    finally:
        miner.shutdown()
    for k, v in counts.items():
        if k.startswith("final_"):
            miner.metrics.triplets.inc(v, tags={"kind": k[6:]})
    return miner, mined, counts


def run(cfg: RunConfig, out_dir: str | Path, watch=None) -> dict[str, Any]:
    """Mine into out_dir (a path or a pyarrow.fs URI such as s3://bucket/run). Running again with the
    same config and out_dir after a crash resumes the run; with a larger budget after it finished,
    extends it (NothingToDo when nothing is left). watch (benchmarks): started(miner), mined(miner)."""
    preflight(cfg)
    output = open_output(cfg, str(out_dir))
    store = output.store
    started_at = now()
    t0 = time.monotonic()
    run_name = f"nhr-{uuid.uuid4().hex[:8]}"
    started_ray = False
    try:
        started_ray = connect(cfg)
        miner, mined, counts = _mine(cfg, output, run_name, watch)
    except Exception as e:
        if output.discard():
            log.warning("the run failed before it recorded any data: %s holds no run state now", out_dir)
        if isinstance(e, RunError) or not isinstance(e, RuntimeError):
            raise
        raise RunError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    finally:
        close_spend_ledger(cfg)
        release_capacity(cfg)
        if started_ray:
            ray.shutdown()
    wall = time.monotonic() - t0
    funnel = miner.funnel.as_dict(model_names(cfg))
    # after finalize: inversion and the consistency re-scoring spend API calls too
    api_usage = miner.usage.as_dict()
    funnel.update(api_usage=api_usage, simulated_roles=cfg.simulated_roles())  # []: no role was simulated
    store.write_json("funnel.json", funnel)
    sc = mined["scheduler"]
    part = _part(mined, counts, started_at, output.mode == "resumed")
    manifest = {
        **faults.record(),  # {"test_fault": name} for a fault injected on purpose (testing/faults.py)
        "simulated_roles": funnel["simulated_roles"],
        "config": cfg.model_dump(mode="json"),
        "versions": versions(),
        "seed": cfg.seed,
        "started": started_at,
        "ended": part["ended"],
        "resumed": output.resumed,
        # each part's figures are the run's totals when that part ended
        "parts": [*output.parts, part],
        "wall_seconds": wall,
        "gpu_hours": mined["ledger"],
        "scheduler": sc,
        "api_usage": api_usage,
        "reissued_batches": mined["reissued_batches"],
        "pools": mined["pools"],
        "rebalancing": mined["rebalancing"],
        "locality": mined["locality"],
        "timeline": mined["timeline"],  # seconds from the pools' start: pools ready, first draw, ..., loop end
        "source_memory": mined["source_memory"],
        "triplets": counts,
        **simulated_truth(cfg, store),
    }
    store.write_json("manifest.json", manifest)  # written last: its presence marks a complete run
    return {"funnel": funnel, "manifest": manifest, "table": format_table(funnel["table"])}


def _part(mined: dict, counts: dict, started_at: str, resumed: bool) -> dict[str, Any]:
    """This part's entry in manifest.json `parts` (one per budget the run was given)."""
    sc = mined["scheduler"]
    return {"budget_gpu_hours": sc["budget_gpu_hours"], "spent_gpu_hours": sc["spent_gpu_hours"],
            "ended_by": "budget" if mined["budget_exhausted"] else "queue", "jobs_completed": sc["jobs_completed"],
            "started": started_at, "ended": now(), "resumed": resumed,
            "triplets": sum(v for k, v in counts.items() if k.startswith("final_"))}  # fmt: skip


def simulated_truth(cfg: RunConfig, store) -> dict[str, Any]:
    """For a run whose images the simulation made (t2i and editor on `sim`): the kept set's true
    precision by kind (share of final triplets a careful human would score above 4.0 on both axes), read
    by the simulation's oracle from the written triplets after the run; no stage ever reads it."""
    if any(cfg.role(r).backend != "sim" for r in ("t2i", "editor")):
        return {}
    from nhr_ray.backends.sim.oracle import TRIPLET_COLUMNS, kept_precision

    return {"simulation_truth": {"true_precision": kept_precision(iter_rows(store, "triplets", TRIPLET_COLUMNS))}}
