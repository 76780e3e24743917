"""Joining or starting a Ray cluster. With RAY_ADDRESS set (as under `ray job submit`) or
`ray.address` in the config, join that cluster; otherwise start a private local one that declares
`ray.local_num_gpus` GPUs (fake ones on a laptop: the simulation never touches them).

A local cluster listens on this machine's network address, not on 127.0.0.1 (Ray binds its GCS,
raylet, object manager and workers to every interface and maps a loopback node address back to
the host's), so it always runs with Ray's token authentication: a process that reaches the address
but lacks the token cannot join it. Only an explicit RAY_AUTH_MODE=disabled in the environment
turns that off (the test suite does, for its own private clusters), with a warning."""

from __future__ import annotations

import logging
import os

import ray

from nhr_ray.stages import table

log = logging.getLogger(__name__)


def connect(cfg) -> bool:
    """Returns True when this call started a local cluster (the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    from nhr_ray.testing.faults import env_vars as test_fault

    # No job runtime_env unless a test's injected fault (testing/faults.py) must reach every worker:
    # with one, Ray starts every worker through an extra Python process (setup_worker.py, about a
    # CPU-second each) before the worker itself.
    fault = test_fault()
    extra = {"runtime_env": {"env_vars": fault}} if fault else {}
    if address:
        ray.init(address=address, log_to_driver=True, **extra)
        return False
    start_local(
        num_cpus=cfg.ray.local_num_cpus or max(os.cpu_count() or 1, 16),
        num_gpus=cfg.ray.local_num_gpus,
        include_dashboard=cfg.ray.include_dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        logging_level=logging.WARNING,
        **extra,
    )
    return True


def start_local(**init_kwargs) -> None:
    """`ray.init(address="local", ...)`: a private local cluster, with token authentication."""
    use_token_auth()
    ray.init(address="local", **init_kwargs)


def use_token_auth() -> None:
    """Token authentication for the clusters this process starts (local_auth), in effect at once."""
    if local_auth():
        reload_auth_settings()


def local_auth() -> bool:
    """Token authentication for a cluster this process starts, as Ray does for a new local
    `ray.init()`, with the token Ray would use (RAY_AUTH_TOKEN, the file at RAY_AUTH_TOKEN_PATH,
    else ~/.ray/auth_token). A missing default token file is created readable by its owner only
    (Ray would create it with the umask's mode); a token file others can read is refused. Sets
    RAY_AUTH_MODE=token in this process's environment (the cluster's processes inherit it) and
    returns True; False only for an explicit RAY_AUTH_MODE=disabled."""
    from nhr_ray.secretfile import SecretFileError, private_file

    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode == "disabled":
        log.warning("RAY_AUTH_MODE=disabled: the local Ray cluster accepts any process that can reach this machine's "
                    "address (its code runs with this run's environment and keys); unset it to use a token")
        return False
    if mode not in ("", "token"):
        raise RuntimeError(f"RAY_AUTH_MODE={mode!r}: use 'token' (or leave it unset)")
    os.environ["RAY_AUTH_MODE"] = "token"
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip() or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    if not os.environ.get("RAY_AUTH_TOKEN_PATH") and not os.path.exists(path):
        _write_private_token(path)
        log.info("created a Ray authentication token in %s (readable by you only)", path)
    try:
        private_file(path, "Ray authentication token")
    except SecretFileError as e:
        raise RuntimeError(str(e)) from None
    return True


def reload_auth_settings() -> None:
    """Ray reads RAY_AUTH_MODE and the token once per process and caches them: reload both after
    changing them, as `ray.init` itself does when it turns token authentication on."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _write_private_token(path: str) -> None:
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(generate_new_authentication_token())


STREAMING_ROLES = table.streaming_roles()  # designer, t2i, gate, editor, prefilter, validator


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
