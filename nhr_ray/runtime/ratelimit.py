"""Cluster-wide rate limits and a shared spend budget for hosted APIs: the Ray side of the `Limits`
port (nhr_ray/ports.py, where the plain `TokenBucket` lives).

`shared_limiter(name, rpm, tpm, max_usd)` returns a client to one bucket shared by every caller
with that name: a named, detached Ray actor in the `nhr_ray` namespace when Ray is initialised (so
any actor of any role finds it, whoever created it, and it outlives the actor that did), else the
process's in-process bucket (`ports.LOCAL`). `RayLimits` is what the Ray layer hands the backends it
hosts (`BackendContext.limits`). A provider's rate buckets are shared by every run of a cluster
(quota is per provider account); a run's spend ledger is the run's own: its driver creates it
(`open_spend_ledger`, owned by the driver, so it goes with a driver that is killed) and ends it when
the run ends, failed or not (`close_spend_ledger`).
"""

from __future__ import annotations

import logging

from nhr_ray.ports import LOCAL, LOCAL_SPEND, Limiter, Reservation, TokenBucket

__all__ = ["LimiterClient", "RayLimits", "Reservation", "TokenBucket", "budget_scope", "shared_limiter"]

NAMESPACE = "nhr_ray"
log = logging.getLogger(__name__)


class LimiterClient:
    """What backends hold: the same three calls whether the bucket is local or a Ray actor."""

    def __init__(self, bucket: TokenBucket | None = None, actor=None, name: str = ""):
        self._bucket, self._actor, self.name = bucket, actor, name

    def reserve(self, tokens: float = 0.0, usd: float = 0.0) -> Reservation:
        if self._bucket is not None:
            return self._bucket.reserve(tokens, usd)
        import ray

        ok, wait = ray.get(self._actor.reserve.remote(tokens, usd))
        return Reservation(ok=ok, wait_s=wait)

    def settle(self, token_delta: float = 0.0, usd_estimate: float = 0.0, usd_actual: float = 0.0) -> None:
        if self._bucket is not None:
            self._bucket.settle(token_delta, usd_estimate, usd_actual)
        else:  # fire and forget: the actor applies calls in order
            self._actor.settle.remote(token_delta, usd_estimate, usd_actual)

    def stats(self) -> dict[str, float]:
        if self._bucket is not None:
            return self._bucket.stats()
        import ray

        return ray.get(self._actor.stats.remote())


class _BucketActor:
    """The Ray wrapper: one TokenBucket behind a named actor (calls run one at a time)."""

    def __init__(self, rpm, tpm, max_usd, burst_s):
        self.bucket = TokenBucket(rpm, tpm, max_usd, burst_s)

    def configure(self, rpm, tpm, max_usd):
        self.bucket.configure(rpm, tpm, max_usd)

    def reserve(self, tokens: float, usd: float) -> tuple[bool, float]:
        r = self.bucket.reserve(tokens, usd)
        return r.ok, r.wait_s

    def settle(self, token_delta: float, usd_estimate: float, usd_actual: float) -> None:
        self.bucket.settle(token_delta, usd_estimate, usd_actual)

    def stats(self) -> dict[str, float]:
        return self.bucket.stats()


def budget_scope() -> str:
    """Name of the run's spend ledger: the Ray job (every actor of a run shares its driver's job
    id), or this process without Ray."""
    try:
        import ray

        if ray.is_initialized():
            return f"usd:{ray.get_runtime_context().get_job_id()}"
    except Exception:  # noqa: BLE001
        pass
    return LOCAL_SPEND


def shared_limiter(
    name: str,
    rpm: float | None = None,
    tpm: float | None = None,
    max_usd: float | None = None,
    burst_s: float = 1.0,
    owned: bool = False,
) -> LimiterClient:
    """A client to the bucket called `name`, created with these limits if it does not exist yet
    (an existing one takes the given limits: every actor of a run reads the same config). With
    owned, a bucket this call creates lives only as long as the calling process's worker or driver;
    otherwise it is detached and outlives its creator."""
    try:
        import ray

        use_ray = ray.is_initialized()
    except ImportError:
        use_ray = False
    if not use_ray:
        return LimiterClient(bucket=LOCAL.bucket(name, rpm, tpm, max_usd, burst_s), name=name)
    actor_cls = ray.remote(num_cpus=0, max_restarts=-1)(_BucketActor)
    actor = actor_cls.options(
        name=f"ratelimit:{name}", namespace=NAMESPACE, get_if_exists=True, lifetime=None if owned else "detached"
    ).remote(rpm, tpm, max_usd, burst_s)
    actor.configure.remote(rpm, tpm, max_usd)
    return LimiterClient(actor=actor, name=name)


def end_limiter(name: str) -> bool:
    """End the bucket called `name` (its actor, or the in-process bucket); False if there was none."""
    import ray

    if not ray.is_initialized():
        return LOCAL.drop(name)
    try:
        actor = ray.get_actor(f"ratelimit:{name}", namespace=NAMESPACE)
    except ValueError:  # no such actor
        return False
    ray.kill(actor, no_restart=True)
    return True


def open_spend_ledger(cfg) -> LimiterClient | None:
    """Create the run's spend ledger from the driver, before any actor asks for it, so that the
    driver owns it; the caller holds the returned client for the run (Ray ends a named actor that
    is not detached once its owner holds no handle to it). None without api.max_cost_usd."""
    if cfg.api.max_cost_usd is None:
        return None
    ledger = shared_limiter(budget_scope(), max_usd=cfg.api.max_cost_usd, owned=True)
    ledger.stats()  # returns once the actor exists
    return ledger


def close_spend_ledger(cfg) -> None:
    """End the run's spend ledger (a long-lived cluster would otherwise keep one actor per run)."""
    if cfg.api.max_cost_usd is None:
        return
    try:
        end_limiter(budget_scope())
    except Exception as e:  # noqa: BLE001  (ending the run must not fail on its ledger)
        log.warning("could not end the run's spend ledger: %s", e)


def reset_local() -> None:
    """Forget in-process buckets (tests; a new run in the same process)."""
    LOCAL.clear()


class RayLimits:
    """The `Limits` port as the Ray layer provides it: named limiter actors shared by the cluster
    (in-process buckets where Ray is not initialised)."""

    def rate_limiter(self, key: str, rpm: float | None, tpm: float | None, burst_s: float = 1.0) -> Limiter:
        return shared_limiter(key, rpm, tpm, burst_s=burst_s)

    def spend_ledger(self, max_usd: float) -> Limiter:
        return shared_limiter(budget_scope(), max_usd=max_usd)
