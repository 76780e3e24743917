"""One mining run, end to end: validate, connect, mine (stages 1-8), finalize (8b-11), report."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import logging
import time
from pathlib import Path
from typing import Any

import ray

from nhr_ray.config import RunConfig
from nhr_ray.roles import ROLE_KINDS, backend_class
from nhr_ray.runtime.cluster import check_capacity, connect
from nhr_ray.runtime.driver import Miner, write_json
from nhr_ray.runtime.finalize import finalize
from nhr_ray.runtime.funnel import format_table

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


def run(cfg: RunConfig, out_dir: str | Path) -> dict[str, Any]:
    out = Path(out_dir)
    if (out / "data").exists() and any((out / "data").glob("*.parquet")):
        raise RunError(f"{out} already holds a run's data; choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    preflight(cfg)
    started_at = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    started_ray = connect(cfg)
    miner = None
    try:
        check_capacity(cfg, list(ROLE_KINDS))
        miner = Miner(cfg, out)
        miner.start_pools()
        mined = miner.run()
        miner.shutdown()
        counts = finalize(cfg, out, miner.funnel, miner.usage)
    except RuntimeError as e:
        if isinstance(e, RunError):
            raise
        raise RunError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    finally:
        if miner is not None:
            miner.shutdown()
        if started_ray:
            ray.shutdown()
    wall = time.monotonic() - t0
    models = model_names(cfg)
    funnel = miner.funnel.as_dict(models)
    # after finalize: inversion and the consistency re-scoring spend API calls too
    api_usage = miner.usage.as_dict()
    funnel["api_usage"] = api_usage
    write_json(out / "funnel.json", funnel)
    manifest = {
        "config": cfg.model_dump(mode="json"),
        "versions": versions(),
        "seed": cfg.seed,
        "started": started_at.isoformat(),
        "ended": dt.datetime.now(dt.timezone.utc).isoformat(),
        "wall_seconds": wall,
        "gpu_hours": mined["ledger"],
        "scheduler": mined["scheduler"],
        "api_usage": api_usage,
        "triplets": counts,
    }
    write_json(out / "manifest.json", manifest)
    return {"funnel": funnel, "manifest": manifest, "table": format_table(funnel["table"])}
