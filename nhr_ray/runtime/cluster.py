"""Joining or starting a Ray cluster. With RAY_ADDRESS set (as under `ray job submit`) or
`ray.address` in the config, join that cluster; otherwise start a private local one that declares
`ray.local_num_gpus` GPUs (fake ones on a laptop: the simulation never touches them)."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


def connect(cfg) -> bool:
    """Returns True when this call started a local cluster (the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env=env)
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",
        num_cpus=cfg.ray.local_num_cpus or max(os.cpu_count() or 1, 16),
        num_gpus=cfg.ray.local_num_gpus,
        include_dashboard=cfg.ray.include_dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        logging_level=logging.WARNING,
        runtime_env=env,
    )
    return True


def check_capacity(cfg, roles: list[str]) -> None:
    """Fail before work when the cluster can never host the configured pools."""
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    for role in roles:
        rc = cfg.role(role)
        if rc.num_gpus > 0 and rc.num_gpus > gpus:
            raise RuntimeError(
                f"roles.{role}: each actor needs {rc.num_gpus:g} GPUs but the cluster has {gpus:g} in all"
            )
