"""What the OpenAI and Gemini backends share: one call with retries, limits, budget and usage.

A provider module supplies two functions per item: `send()` issues one HTTP request through the
SDK (the SDK's own retries are off) and returns a `Reply`; `classify(exc)` turns an SDK exception
into a `Failure`. `ApiCaller.call()` wraps them:

    budget check -> rate reservation (sleep) -> send -> retry on 429/5xx/timeout/connection with
    exponential backoff, full jitter, at least Retry-After, bounded tries -> usage and cost -> Answer

It never raises for an item: every way an item can end is a named outcome in `Answer.error`
(None when the model answered usefully), with the raw text kept and redacted.
"""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from nhr_ray.config.api import ApiConfig
from nhr_ray.ports import LOCAL, Limiter, Limits
from nhr_ray.redact import redact
from nhr_ray.roles import Answer, BackendUnavailable

# Named outcomes an API item can end with (besides None = answered).
OUTCOMES = (
    "rate_limited_exhausted",  # 429 on every try
    "server_error",  # 5xx on the last try
    "timeout",  # no answer within timeout_s on the last try
    "connection_error",  # could not connect on the last try
    "auth_error",  # 401/403: key missing, wrong or without access (never retried)
    "bad_request",  # other 4xx (never retried: the same request would fail again)
    "malformed_response",  # a 200 whose body the SDK could not read
    "safety_block",  # prompt or answer blocked by the provider's safety system
    "refusal",  # the model declined
    "empty_answer",  # no text at all
    "truncated",  # cut at the output limit (text kept)
    "cost_budget_exhausted",  # api.max_cost_usd reached: not sent
    "internal_error",  # a bug of ours around the SDK call (message kept, redacted)
)


@dataclass
class Reply:
    """One HTTP answer as the provider module read it."""

    text: str | None
    outcome: str | None = None  # None: a usable answer; else one of OUTCOMES
    input_tokens: int = 0
    output_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failure:
    """One failed try as `classify` read it."""

    outcome: str
    retryable: bool
    message: str
    retry_after: float | None = None


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    def backoff(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter on an exponential ceiling; never shorter than the server's Retry-After."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2.0 ** retry))
        wait = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.backoff_max_s)


def retry_after_seconds(headers: Any, body: Any = None) -> float | None:
    """Retry-After (seconds or HTTP date), retry-after-ms, or Google's RetryInfo retryDelay."""
    try:
        if headers is not None:
            ms = headers.get("retry-after-ms")
            if ms:
                return max(0.0, float(ms) / 1000.0)
            ra = headers.get("retry-after")
            if ra:
                try:
                    return max(0.0, float(ra))
                except ValueError:
                    return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
    except Exception:  # a malformed header is no reason to fail the item
        pass
    m = re.search(r"retryDelay['\"]?\s*:\s*['\"]([\d.]+)s", str(body or ""))
    return float(m.group(1)) if m else None


def status_failure(status: int | None, message: str, retry_after: float | None = None) -> Failure:
    if status == 429:
        return Failure("rate_limited_exhausted", True, message, retry_after)
    if status in (408,):
        return Failure("timeout", True, message, retry_after)
    if status is not None and status >= 500:
        return Failure("server_error", True, message, retry_after)
    if status in (401, 403):
        return Failure("auth_error", False, message)
    return Failure("bad_request", False, message)


_TIMEOUT_NAMES = ("Timeout", "TimeoutError", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout")
_CONNECT_NAMES = ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError", "ConnectionError", "NetworkError")


def transport_failure(exc: BaseException) -> Failure | None:
    """Timeouts and connection errors of httpx/httpx2/requests/aiohttp, by class name (each SDK wraps
    a different HTTP stack, and the names are stable across them)."""
    names = [c.__name__ for c in type(exc).__mro__]
    msg = f"{type(exc).__name__}: {exc}"
    if any(n in _TIMEOUT_NAMES or n.endswith("TimeoutError") or n.endswith("TimeoutException") for n in names):
        return Failure("timeout", True, msg)
    if any(n in _CONNECT_NAMES for n in names) or isinstance(exc, (ConnectionError, OSError)):
        return Failure("connection_error", True, msg)
    return None


@dataclass
class Pricing:
    input_per_m: float | None = None
    output_per_m: float | None = None

    def usd(self, input_tokens: float, output_tokens: float) -> float:
        if self.input_per_m is None:
            return 0.0
        return (input_tokens * self.input_per_m + output_tokens * (self.output_per_m or 0.0)) / 1e6


class ApiCaller:
    """Issues items for one backend: bounded concurrency, shared limits, retries, accounting."""

    def __init__(
        self,
        policy: RetryPolicy,
        classify: Callable[[BaseException], Failure],
        pricing: Pricing,
        rate: Limiter | None = None,  # requests/tokens per minute
        budget: Limiter | None = None,  # the run's spend
        concurrency: int = 8,
        secrets: list[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        self.policy, self.classify, self.pricing = policy, classify, pricing
        self.rate, self.budget = rate, budget
        self.secrets = list(secrets or [])
        self.sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nhr-api")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, sends: list[Callable[[], Reply]], est_tokens: list[float]) -> list[Answer]:
        """Run one call per item on the pool; answers come back in request order."""
        futures = [self._pool.submit(self.call, s, e) for s, e in zip(sends, est_tokens)]
        return [f.result() for f in futures]

    def _jitter_rng(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())

    def call(self, send: Callable[[], Reply], est_tokens: float = 0.0) -> Answer:
        try:
            return self._call(send, est_tokens)
        except Exception as exc:  # noqa: BLE001  e.g. the limiter actor died: count it, keep going
            usage = {"input_tokens": 0.0, "output_tokens": 0.0, "usd": 0.0, "api_calls": 0.0, "retries": 0.0}
            return self._failed("internal_error", f"{type(exc).__name__}: {exc}", usage, [])

    def _call(self, send: Callable[[], Reply], est_tokens: float) -> Answer:
        usage = {"input_tokens": 0.0, "output_tokens": 0.0, "usd": 0.0, "api_calls": 0.0, "retries": 0.0}
        est_usd = self.pricing.usd(est_tokens, 0.0)
        rng = self._jitter_rng()
        last: Failure | None = None
        try_errors: list[str] = []  # outcome of each failed try, in order
        tries = self.policy.max_retries + 1
        for attempt in range(tries):
            if self.budget is not None and not self.budget.reserve(usd=est_usd).ok:
                return self._failed("cost_budget_exhausted", "api.max_cost_usd reached; not sent", usage, try_errors)
            if self.rate is not None:
                r = self.rate.reserve(tokens=est_tokens)
                if r.wait_s > 0:
                    self.sleep(r.wait_s)
            usage["api_calls"] += 1
            if attempt:
                usage["retries"] += 1
            try:
                reply = send()
            except Exception as exc:  # noqa: BLE001  every SDK error becomes a counted outcome
                last = self.classify(exc)
                try_errors.append(last.outcome)
                self._settle(est_tokens, est_usd, 0, 0)
                if last.retryable and attempt + 1 < tries:
                    self.sleep(self.policy.backoff(attempt, last.retry_after, rng))
                    continue
                return self._failed(last.outcome, last.message, usage, try_errors)
            cost = self.pricing.usd(reply.input_tokens, reply.output_tokens)
            self._settle(est_tokens, est_usd, reply.input_tokens + reply.output_tokens, cost)
            usage["input_tokens"] += reply.input_tokens
            usage["output_tokens"] += reply.output_tokens
            usage["usd"] += cost
            meta = {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in reply.meta.items()}
            meta["tries"] = attempt + 1
            meta["try_errors"] = try_errors
            return Answer(text=redact(reply.text, self.secrets), error=reply.outcome, usage=usage, meta=meta)
        raise AssertionError("unreachable")  # pragma: no cover

    def _settle(self, est_tokens: float, est_usd: float, real_tokens: float, usd: float) -> None:
        try:
            if self.rate is not None:
                self.rate.settle(token_delta=real_tokens - est_tokens)
            if self.budget is not None:
                self.budget.settle(usd_estimate=est_usd, usd_actual=usd)
        except Exception:  # accounting must not lose the item's answer
            pass

    def _failed(self, outcome: str, message: str, usage: dict[str, float], try_errors: list[str]) -> Answer:
        meta = {"last_error": redact(message, self.secrets)[:500], "tries": len(try_errors), "try_errors": try_errors}
        return Answer(text=None, error=outcome, usage=usage, meta=meta)


def estimate_tokens(text: str, images: int = 0, per_image: int = 258, expected_output: int = 256) -> float:
    """Rough pre-call token estimate for the tokens-per-minute bucket (settled with real usage)."""
    return len(text) / 4.0 + images * per_image + expected_output


def api_config(context) -> Any:
    """The run's `api` section (defaults when a backend is built without a run config)."""
    cfg = getattr(context, "run_config", None)
    return cfg.api if cfg is not None else ApiConfig()


def make_caller(provider: str, model: str, policy_cfg, api_cfg, classify, rpm, tpm, seed=None, limits: Limits | None = None) -> ApiCaller:
    """An ApiCaller wired to the shared limiter of (provider, model) and the run's spend ledger, both
    from `limits` (the context's port; this process's buckets when None). Rate limits are keyed by
    provider and model, because that is how providers meter quota: two roles on one model share it;
    a tuned validator model has its own."""
    limits = limits if limits is not None else LOCAL
    price = api_cfg.price(model)
    rate = limits.rate_limiter(f"{provider}:{model}", rpm, tpm, burst_s=policy_cfg.burst_s) if (rpm or tpm) else None
    budget = limits.spend_ledger(api_cfg.max_cost_usd) if api_cfg.max_cost_usd else None
    return ApiCaller(
        RetryPolicy(policy_cfg.max_retries, policy_cfg.backoff_initial_s, policy_cfg.backoff_max_s),
        classify,
        Pricing(price.input_per_m, price.output_per_m) if price else Pricing(),
        rate=rate,
        budget=budget,
        concurrency=policy_cfg.concurrency,
        seed=seed,
    )


def api_key(names: tuple[str, ...]) -> str | None:
    """The first of `names` set in the environment, else in the node's secrets file
    ($NHR_SECRETS_FILE, see nhr_ray/secretfile.py); None if neither has one."""
    from nhr_ray.secretfile import SecretFileError, secret

    try:
        return next((v for n in names if (v := secret(n))), None)
    except SecretFileError as e:
        raise BackendUnavailable(str(e)) from None


def require_price(api_cfg, model: str) -> None:
    """With a cost budget, an unpriced model would spend without being counted: refuse it."""
    if api_cfg.max_cost_usd is not None and api_cfg.price(model) is None:
        raise BackendUnavailable(
            f"api.max_cost_usd is set but model {model!r} has no entry in api.prices; add "
            f"api.prices.{model}: {{input_per_m: ..., output_per_m: ...}}"
        )
