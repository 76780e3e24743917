"""A fault storm: 30 % of requests fail (429, 500, timeout, garbled body) under a request-rate limit.

Every item must end answered or with a counted failure; the server's own request log must match
the backend's counts item by item (none lost, none repeated after success), and the request rate
the server measured must stay under the configured limit.
"""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from nhr_ray.roles import TextRequest, VLMRequest
from nhr_ray.testing.fake_api import FakeAPIServer, prompt_text, random_faults

from api_helpers import GEMINI_KEY, OPENAI_KEY, backend, api_keys  # noqa: F401  (api_keys: autouse fixture)

RPM = 6000  # 100 requests/s, burst 100
RETRYABLE_FAILURES = {"rate_limited_exhausted", "server_error", "timeout", "malformed_response"}


def policy(srv):
    return {
        "base_url": srv.base_url, "timeout_s": 0.5, "max_retries": 4, "backoff_initial_s": 0.02,
        "backoff_max_s": 0.2, "concurrency": 12, "requests_per_minute": RPM,
    }  # fmt: skip


def run_storm(protocol: str, n: int):
    faults = random_faults(0.30, ("429", "500", "slow", "malformed"), seed=7)
    with FakeAPIServer(protocol, faults=faults, slow_s=0.8, retry_after=0.05, latency_s=0.01) as srv:
        if protocol == "openai":
            b = backend("designer", "openai", {"openai": policy(srv)})
            answers = b.complete([TextRequest(f"I{i}", "design", f"ITEM-{i} design scenes") for i in range(n)])
        else:
            b = backend("validator", "gemini", {"gemini": policy(srv)})
            im = np.zeros((8, 8, 3), np.uint8)
            answers = b.ask([VLMRequest(f"I{i}", "edit_scores", f"ITEM-{i} score", [im, im]) for i in range(n)])
        b.teardown()
    return answers, list(srv.records)


@pytest.mark.parametrize("protocol,n", [("gemini", 300), ("openai", 200)])
def test_fault_storm_every_item_accounted_and_rate_bounded(protocol, n):
    answers, records = run_storm(protocol, n)
    assert len(answers) == n

    by_item: dict[int, list] = collections.defaultdict(list)
    for rec in records:
        by_item[int(re.search(r"ITEM-(\d+)", prompt_text(rec)).group(1))].append(rec)

    lost_in_transit = 0
    outcomes = collections.Counter(a.error for a in answers)
    assert set(outcomes) <= {None} | RETRYABLE_FAILURES, outcomes
    assert outcomes[None] >= n * 0.97  # 0.3^5 per item of exhausting 5 tries
    for i, a in enumerate(answers):
        seen = by_item[i]
        calls = a.usage["api_calls"]
        assert calls == a.usage["retries"] + 1 == len(a.meta["try_errors"]) + (a.error is None)
        # the server saw every try, except a timed-out or broken try that never reached its handler
        unseen_ok = sum(e in ("timeout", "connection_error") for e in a.meta["try_errors"])
        assert calls - unseen_ok <= len(seen) <= calls
        lost_in_transit += calls - len(seen)
        ok = [r for r in seen if r.fault is None]
        # never re-sent after an answer arrived; the server may have answered a try whose answer
        # came too late for the client (a timeout on a loaded machine), and only such a try
        timeouts = a.meta["try_errors"].count("timeout")
        assert (a.error is None) <= len(ok) <= (a.error is None) + timeouts
        if a.error is None:
            assert seen[-1].fault is None
        if a.error is not None:
            assert a.meta["last_error"] and calls == 5
    assert sum(a.usage["api_calls"] for a in answers) == len(records) + lost_in_transit
    transport_tries = sum(a.meta["try_errors"].count("timeout") + a.meta["try_errors"].count("connection_error") for a in answers)
    assert lost_in_transit <= transport_tries  # only tries that died in transit are unseen
    assert sum(1 for r in records if r.fault) / len(records) == pytest.approx(0.30, abs=0.06)

    # the rate the server saw: at most burst + rate * span in any window (arrival times carry the
    # scheduling jitter of a loaded 2-core machine, hence the small slack)
    t = sorted(r.t for r in records)
    rate, burst = RPM / 60.0, RPM / 60.0
    for i in range(0, len(t), 10):
        for j in range(i + 1, len(t)):
            assert j - i + 1 <= burst + rate * (t[j] - t[i]) * 1.05 + 10
    assert (len(t) - burst) / (t[-1] - t[0]) <= rate * 1.05

    # keys never reach answers
    blob = repr([(a.text, a.error, a.meta) for a in answers])
    assert OPENAI_KEY not in blob and GEMINI_KEY not in blob
