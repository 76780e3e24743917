"""The one list of config fields a resumed or extended run may change, each with its reason.

A run's output folder records the config it was started with (state/run.json). Running again on
that folder resumes it after a crash, or extends it when the budget is larger; every field not
listed here must be the same, or the run is refused naming the field. The scheduler's checkpoint is
keyed by a hash of the same fields (`config_hash`), so the two checks can never disagree.

A field belongs here only if it cannot change what any job produces: every outcome is a function of
(run seed, item id) and of the fields not listed. Batch sizes are not listed: real backends may
answer a batch with padding differently from a single item.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from typing import Any

from nhr_ray.config.renames import fingerprint_spelling

RESUMABLE: dict[str, str] = {
    "scheduler.budget_gpu_hours": "decides how much of the queue is drawn, not what a job gives; a larger one extends "
    "the run (the same queue and draw order)",
    "scheduler.checkpoint_every_s": "only when the scheduler writes its checkpoint",
    "output.progress": "only the terminal display",
    "output.shard_rows": "only how rows are cut into files; readers read every shard",
    "ray.*": "where and how many actors run (cluster address, local cluster size, autosize, elastic pools, loading "
    "order); no outcome depends on which actor computes it",
    "roles.*.actors": "pool size (placement)",
    "roles.*.max_actors": "elastic pool limit (placement)",
    "roles.*.max_in_flight": "batches queued per actor (throughput)",
    "roles.*.num_cpus": "CPUs reserved per actor (placement)",
    "api.max_cost_usd": "a spending cap like the GPU budget: how many calls are made, not what a call answers",
    "api.prices.*": "only how API spend is reckoned",
    "api.*.timeout_s": "call timing and retries: whether a call is retried, not what it answers",
    "api.*.max_retries": "as timeout_s",
    "api.*.backoff_initial_s": "as timeout_s",
    "api.*.backoff_max_s": "as timeout_s",
    "api.*.concurrency": "calls in flight per actor (throughput)",
    "api.*.requests_per_minute": "rate limit (throughput)",
    "api.*.tokens_per_minute": "rate limit (throughput)",
    "api.*.burst_s": "rate limit (throughput)",
    "sim.realtime_scale": "the simulation's real-time pacing only",
    "sim.gpu_sharing": "the simulation's real-time pacing only",
    "sim.time_share_efficiency": "the simulation's real-time pacing only",
}


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dump as dotted keys (a backend's `options` stay one value)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "options":
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def resumable(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in RESUMABLE)


def flat_config(cfg) -> dict[str, Any]:
    return fingerprint_spelling(flat(cfg.model_dump(mode="json")))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys of two flat configs that differ and may not (sorted)."""
    return sorted(k for k in set(old) | set(new) if not resumable(k) and old.get(k) != new.get(k))


def config_hash(cfg) -> str:
    """Hash of every field a resumed run may not change."""
    fixed = {k: v for k, v in flat_config(cfg).items() if not resumable(k)}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]
