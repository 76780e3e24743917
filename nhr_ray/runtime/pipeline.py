"""One mining run, end to end: validate, connect, mine (stages 1-8), finalize (8b-11), report."""

from __future__ import annotations

import datetime as dt
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
from nhr_ray.io.store import Store
from nhr_ray.runtime.driver import Miner
from nhr_ray.runtime.finalize import finalize
from nhr_ray.runtime.funnel import format_table
from nhr_ray.resumable import differences, flat_config

log = logging.getLogger(__name__)

PACKAGES = ["nhr-ray", "ray", "numpy", "pyarrow", "pydantic", "opencv-python-headless", "torch", "diffusers",
            "transformers", "vllm", "openai", "google-genai"]  # fmt: skip
ROW_MODELS = {"source images": "t2i", "plausibility gate": "gate", "edits": "editor", "soft pre-filter": "prefilter",
              "hard validation": "validator", "inversion": "inverter", "backward consistency": "validator"}  # fmt: skip


class RunError(RuntimeError):
    """A run that cannot start or cannot finish; the message is one line for the user."""


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
        cls = backend_class(role, rc.backend)
        ctx = BackendContext(role=role, run_seed=cfg.seed, num_gpus=rc.num_gpus, sim=cfg.sim, run_config=cfg)
        try:
            cls.preflight(cls.Options.model_validate(rc.options), ctx)
        except BackendUnavailable as e:
            raise RunError(f"roles.{role}.backend={rc.backend}: {e}") from None


def model_names(cfg: RunConfig) -> dict[str, str]:
    out = {}
    for row, role in ROW_MODELS.items():
        rc = cfg.role(role)
        model = rc.options.get("model") if isinstance(rc.options, dict) else None
        out[row] = f"{rc.backend}:{model}" if model else rc.backend
    out["low-level check"] = "connected components"
    out["best-of selection"] = "argmax"
    out["composition"] = "bootstrap + concatenation"
    return out


STATE_FORMAT = "nhr-ray-run/1"


def fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The whole config as dotted keys (state/run.json); nhr_ray/resumable.py says which may differ."""
    return flat_config(cfg)


def open_output(cfg: RunConfig, out: str) -> tuple[Store, bool]:
    """The output location, and whether this is a resumption. Refuses what it must not touch."""
    store = Store(out)
    fp = fingerprint(cfg)
    if store.exists("manifest.json"):
        raise RunError(f"{out} already holds a complete run; choose a new --out directory")
    if store.exists("state/run.json"):
        try:
            state = store.read_json("state/run.json")
        except (ValueError, OSError) as e:
            raise RunError(f"{out}/state/run.json is unreadable ({type(e).__name__}); refusing to resume") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise RunError(f"{out}/state/run.json is not an nhr-ray run state; refusing to resume")
        diff = differences(state.get("fingerprint", {}), fp)
        if diff:
            raise RunError(f"{out} holds a run with another config (differs at {', '.join(diff[:5])}); "
                           "resume with the same config or choose a new --out")
        store.clean_temporaries("data")
        store.clean_temporaries("state")
        return store, True
    if store.glob("data", ""):
        raise RunError(f"{out} holds data of an unknown run; choose a new --out directory")
    store.makedirs()
    store.write_json("state/run.json", {"format": STATE_FORMAT, "fingerprint": fp,
                                        "started": dt.datetime.now(dt.timezone.utc).isoformat()})
    return store, False


def run(cfg: RunConfig, out_dir: str | Path) -> dict[str, Any]:
    """Mine into out_dir (a path or a pyarrow.fs URI such as s3://bucket/run). Running again with the
    same config and out_dir after a crash resumes the run."""
    preflight(cfg)
    store, resumed = open_output(cfg, str(out_dir))
    started_at = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    run_name = f"nhr-{uuid.uuid4().hex[:8]}"
    started_ray = connect(cfg)
    miner = None
    try:
        check_capacity(cfg)
        miner = Miner(cfg, store, run_name)
        miner.start_pools()
        mined = miner.run()
        miner.shutdown()
        counts = finalize(cfg, store, miner.funnel, miner.usage, run_name)
        for k, v in counts.items():
            if k.startswith("final_"):
                miner.metrics.triplets.inc(v, tags={"kind": k[6:]})
    except RuntimeError as e:
        if isinstance(e, RunError):
            raise
        raise RunError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    finally:
        if miner is not None:
            miner.shutdown()
        release_capacity(cfg)
        if started_ray:
            ray.shutdown()
    wall = time.monotonic() - t0
    models = model_names(cfg)
    funnel = miner.funnel.as_dict(models)
    # after finalize: inversion and the consistency re-scoring spend API calls too
    api_usage = miner.usage.as_dict()
    funnel["api_usage"] = api_usage
    store.write_json("funnel.json", funnel)
    manifest = {
        "config": cfg.model_dump(mode="json"),
        "versions": versions(),
        "seed": cfg.seed,
        "started": started_at.isoformat(),
        "ended": dt.datetime.now(dt.timezone.utc).isoformat(),
        "resumed": resumed,
        "wall_seconds": wall,
        "gpu_hours": mined["ledger"],
        "scheduler": mined["scheduler"],
        "api_usage": api_usage,
        "reissued_batches": mined["reissued_batches"],
        "pools": mined["pools"],
        "rebalancing": mined["rebalancing"],
        "locality": mined["locality"],
        "triplets": counts,
    }
    store.write_json("manifest.json", manifest)  # written last: its presence marks a complete run
    return {"funnel": funnel, "manifest": manifest, "table": format_table(funnel["table"])}
