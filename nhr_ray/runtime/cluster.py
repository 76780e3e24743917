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


STREAMING_ROLES = ("designer", "t2i", "gate", "editor", "prefilter", "validator")


def bundle(num_gpus: float, num_cpus: float) -> dict[str, float]:
    """The resources one actor asks for, as the autoscaler's bundles spell them."""
    return {"GPU": num_gpus, "CPU": num_cpus} if num_gpus else {"CPU": num_cpus}


def pool_bundles(cfg, counts: dict[str, int] | None = None) -> list[dict[str, float]]:
    """One resource bundle per actor of the streaming phase (the finalize pools come after it);
    counts: actors per role where they differ from roles.<r>.actors (autosize)."""
    out = []
    for role in STREAMING_ROLES:
        rc = cfg.role(role)
        out += [bundle(rc.num_gpus, rc.num_cpus) for _ in range((counts or {}).get(role, rc.actors))]
    return out


def check_capacity(cfg) -> None:
    """Fail before any work when the pools can never all be placed: actors would wait forever."""
    limit = cfg.ray.autoscaling_max_gpus
    have = float(ray.cluster_resources().get("GPU", 0.0))
    cap = float(limit) if limit is not None else have
    where = f"the autoscaler's limit of {limit}" if limit is not None else f"the {have:g} GPUs of this cluster"
    total = 0.0
    nodes = [float(n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive")]
    for role in STREAMING_ROLES:
        rc = cfg.role(role)
        if rc.num_gpus > cap:
            raise RuntimeError(f"roles.{role}: each actor needs {rc.num_gpus:g} GPUs, more than {where}")
        if limit is None and rc.num_gpus > max(nodes, default=0.0) + 1e-9:
            raise RuntimeError(f"roles.{role}: each actor needs {rc.num_gpus:g} GPUs on one node; the largest node has "
                               f"{max(nodes, default=0.0):g}")
        total += rc.num_gpus * _most_actors(cfg, role)
    if cfg.ray.autosize:  # the sizer sets the GPU roles' counts: check that one actor of each fits
        from nhr_ray.runtime.autosize import initial_counts
        from nhr_ray.runtime.sizing import SizingError

        try:
            counts = initial_counts(cfg)
        except SizingError as e:
            raise RuntimeError(f"ray.autosize: {e}") from None
        if limit is not None:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=pool_bundles(cfg, counts))
        return
    if total > cap + 1e-9:
        parts = ", ".join(f"{r} {_most_actors(cfg, r)}x{cfg.role(r).num_gpus:g}" for r in STREAMING_ROLES if cfg.role(r).num_gpus)
        grown = " when grown to their max_actors" if cfg.ray.elastic else ""
        raise RuntimeError(f"the role pools need {total:g} GPUs{grown} ({parts}), more than {where}")
    if limit is not None:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=pool_bundles(cfg))


def _most_actors(cfg, role: str) -> int:
    """Actors a role's pool can reach: its max_actors with elastic pools, else its actors."""
    rc = cfg.role(role)
    return rc.max_actors or rc.actors if cfg.ray.elastic else rc.actors


def release_capacity(cfg) -> None:
    if (cfg.ray.autoscaling_max_gpus is not None or cfg.ray.elastic) and ray.is_initialized():
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
