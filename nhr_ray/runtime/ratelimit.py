"""Cluster-wide rate limits and a shared spend budget for hosted APIs.

`TokenBucket` is plain code: requests per minute and tokens per minute as two buckets that may go
into debt. `reserve()` never blocks; it books the request at once and says how long the caller must
sleep before sending it, so concurrent callers queue up fairly and the long-run rate never exceeds
the configured one (at most `burst_s` seconds of rate ahead after an idle spell). Token use is
booked from an estimate and settled with the real usage afterwards.

`shared_limiter(name, rpm, tpm, max_usd)` returns a client to one bucket shared by every caller
with that name: a named, detached Ray actor in the `nhr_ray` namespace when Ray is initialised (so
any actor of any role finds it, whoever created it, and it outlives the actor that did), else an
in-process bucket. The spend budget rides on the same object: `reserve()` refuses once settled
spend plus in-flight estimates reach `max_usd`. A provider's rate buckets are shared by every run
of a cluster (quota is per provider account); a run's spend ledger is the run's own: its driver
creates it (`open_spend_ledger`, owned by the driver, so it goes with a driver that is killed) and
ends it when the run ends, failed or not (`close_spend_ledger`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

NAMESPACE = "nhr_ray"
log = logging.getLogger(__name__)


@dataclass
class Reservation:
    ok: bool  # False: the spend budget is exhausted; nothing was booked
    wait_s: float = 0.0  # sleep this long before sending


class TokenBucket:
    """Requests- and tokens-per-minute buckets plus a spend ledger. Thread-safe, never blocks."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        max_usd: float | None = None,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self._lock = threading.Lock()
        self.burst_s = burst_s
        self.max_usd = max_usd
        self.spent_usd = 0.0  # settled spend
        self.pending_usd = 0.0  # estimates of calls in flight
        self.requests = 0
        self.configure(rpm, tpm, max_usd)
        self._r_level = self._r_cap
        self._t_level = self._t_cap
        self._last = clock()

    def configure(self, rpm: float | None, tpm: float | None, max_usd: float | None = None) -> None:
        with self._lock:
            self.rpm, self.tpm = rpm, tpm
            if max_usd is not None:
                self.max_usd = max_usd
            self._r_cap = max(1.0, rpm / 60.0 * self.burst_s) if rpm else 0.0
            self._t_cap = max(1.0, tpm / 60.0 * self.burst_s) if tpm else 0.0

    def _refill(self, now: float) -> None:
        dt = max(0.0, now - self._last)
        self._last = now
        if self.rpm:
            self._r_level = min(self._r_cap, self._r_level + dt * self.rpm / 60.0)
        if self.tpm:
            self._t_level = min(self._t_cap, self._t_level + dt * self.tpm / 60.0)

    def reserve(self, tokens: float = 0.0, usd: float = 0.0) -> Reservation:
        """Book one request of `tokens` estimated tokens and `usd` estimated cost."""
        with self._lock:
            if self.max_usd is not None and self.spent_usd + self.pending_usd >= self.max_usd:
                return Reservation(ok=False)
            now = self._clock()
            self._refill(now)
            wait = 0.0
            if self.rpm:
                self._r_level -= 1.0
                wait = max(wait, -self._r_level / (self.rpm / 60.0))
            if self.tpm:  # even a zero-token request waits out earlier token debt
                self._t_level -= max(0.0, tokens)
                wait = max(wait, -self._t_level / (self.tpm / 60.0))
            self.pending_usd += usd
            self.requests += 1
            return Reservation(ok=True, wait_s=wait)

    def settle(self, token_delta: float = 0.0, usd_estimate: float = 0.0, usd_actual: float = 0.0) -> None:
        """After a call: book the difference between real and estimated tokens (positive: more
        debt, negative: a refund) and replace the cost estimate with the real cost."""
        with self._lock:
            if self.tpm and token_delta:
                self._refill(self._clock())
                self._t_level = min(self._t_cap, self._t_level - token_delta)
            self.pending_usd = max(0.0, self.pending_usd - usd_estimate)
            self.spent_usd += usd_actual

    def stats(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self.requests,
                "spent_usd": self.spent_usd,
                "pending_usd": self.pending_usd,
                "max_usd": self.max_usd if self.max_usd is not None else -1.0,
                "rpm": self.rpm or 0.0,
                "tpm": self.tpm or 0.0,
            }


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


_LOCAL: dict[str, TokenBucket] = {}  # per-process buckets when Ray is not running
_LOCAL_LOCK = threading.Lock()


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
        with _LOCAL_LOCK:
            bucket = _LOCAL.get(name)
            if bucket is None:
                bucket = _LOCAL[name] = TokenBucket(rpm, tpm, max_usd, burst_s)
            else:
                bucket.configure(rpm, tpm, max_usd)
        return LimiterClient(bucket=bucket, name=name)
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
        with _LOCAL_LOCK:
            return _LOCAL.pop(name, None) is not None
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
    from nhr_ray.backends.api.common import budget_scope

    ledger = shared_limiter(budget_scope(), max_usd=cfg.api.max_cost_usd, owned=True)
    ledger.stats()  # returns once the actor exists
    return ledger


def close_spend_ledger(cfg) -> None:
    """End the run's spend ledger (a long-lived cluster would otherwise keep one actor per run)."""
    if cfg.api.max_cost_usd is None:
        return
    from nhr_ray.backends.api.common import budget_scope

    try:
        end_limiter(budget_scope())
    except Exception as e:  # noqa: BLE001  (ending the run must not fail on its ledger)
        log.warning("could not end the run's spend ledger: %s", e)


def reset_local() -> None:
    """Forget in-process buckets (tests; a new run in the same process)."""
    with _LOCAL_LOCK:
        _LOCAL.clear()
