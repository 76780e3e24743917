"""Ports: what a backend gets from whoever runs it, as small interfaces.

Backends never import the runtime. Where a backend needs something shared across the cluster (a
provider's request rate, the run's spend ledger) it asks `BackendContext.limits`, an object with the
`Limits` interface. The Ray layer hands in `nhr_ray.runtime.ratelimit.RayLimits` (named actors every
actor of every role finds); a backend built outside Ray (a test, `nhr-ray score`, a benchmark) gets
`LOCAL`, in-process buckets shared by name within the process.

`TokenBucket` is plain code: requests per minute and tokens per minute as two buckets that may go
into debt. `reserve()` never blocks; it books the request at once and says how long the caller must
sleep before sending it, so concurrent callers queue up fairly and the long-run rate never exceeds
the configured one (at most `burst_s` seconds of rate ahead after an idle spell). Token use is
booked from an estimate and settled with the real usage afterwards. The spend budget rides on the
same object: `reserve()` refuses once settled spend plus in-flight estimates reach `max_usd`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

LOCAL_SPEND = "usd:local"  # the spend ledger's name outside Ray


@dataclass
class Reservation:
    ok: bool  # False: the spend budget is exhausted; nothing was booked
    wait_s: float = 0.0  # sleep this long before sending


class Limiter(Protocol):
    """One shared bucket: book a call before sending it, settle it with what it really used."""

    def reserve(self, tokens: float = 0.0, usd: float = 0.0) -> Reservation: ...

    def settle(self, token_delta: float = 0.0, usd_estimate: float = 0.0, usd_actual: float = 0.0) -> None: ...

    def stats(self) -> dict[str, float]: ...


class Limits(Protocol):
    """Where a backend finds its shared limiters."""

    def rate_limiter(self, key: str, rpm: float | None, tpm: float | None, burst_s: float = 1.0) -> Limiter:
        """The bucket of requests/tokens per minute called `key` (e.g. "gemini:<model>"), shared by
        every caller with that key."""
        ...

    def spend_ledger(self, max_usd: float) -> Limiter:
        """The run's spend ledger (reserve() refuses once `max_usd` is reached)."""
        ...


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


class LocalLimits:
    """In-process `Limits`: one TokenBucket per name, shared by every caller in this process."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, name: str, rpm=None, tpm=None, max_usd=None, burst_s: float = 1.0) -> TokenBucket:
        """The bucket called `name`, created with these limits, or re-configured to them."""
        with self._lock:
            b = self._buckets.get(name)
            if b is None:
                b = self._buckets[name] = TokenBucket(rpm, tpm, max_usd, burst_s)
            else:
                b.configure(rpm, tpm, max_usd)
            return b

    def drop(self, name: str) -> bool:
        with self._lock:
            return self._buckets.pop(name, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def rate_limiter(self, key: str, rpm: float | None, tpm: float | None, burst_s: float = 1.0) -> Limiter:
        return self.bucket(key, rpm, tpm, burst_s=burst_s)

    def spend_ledger(self, max_usd: float) -> Limiter:
        return self.bucket(LOCAL_SPEND, max_usd=max_usd)


# This process's buckets (a process, not a cluster: one per Ray worker or driver, never shared
# between actors). What a backend uses when nothing else was handed in.
LOCAL = LocalLimits()
