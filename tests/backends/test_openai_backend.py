"""The OpenAI text backend through the real openai SDK against a local Chat Completions server."""

from __future__ import annotations

import json
import time

import pytest

from nhr_ray.redact import redact
from nhr_ray.parsing import SCENES_SCHEMA
from nhr_ray.roles import BackendUnavailable, TextRequest, backend_class
from nhr_ray.testing.fake_api import FakeAPIServer

from api_helpers import OPENAI_KEY, backend, context, api_keys  # noqa: F401  (api_keys: autouse fixture)


def api(srv, **kw):
    return {"openai": {"base_url": srv.base_url, "timeout_s": 2.0, "max_retries": 2, "backoff_initial_s": 0.01, **kw}}


def req(i=0, **kw):
    return TextRequest(f"S{i}", "design", f"Design 3 scenes, batch {i}.", **kw)


def test_sends_prompt_model_effort_schema_and_key_and_counts_cost():
    scenes = json.dumps([{"prompt": "a red apple on a table", "edits": ["remove the apple"]}])
    with FakeAPIServer("openai", responder=lambda rec: scenes) as srv:
        b = backend("designer", "openai", api(srv, model="o3", reasoning_effort="high"))
        [a] = b.complete([req(7, system="You design scenes.", json_schema=SCENES_SCHEMA)])
        b.teardown()
    [rec] = srv.records
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert rec.headers["x-stainless-retry-count"] == "0"
    body = rec.body
    assert body["model"] == "o3" and body["reasoning_effort"] == "high"
    assert body["messages"] == [
        {"role": "system", "content": "You design scenes."},
        {"role": "user", "content": "Design 3 scenes, batch 7."},
    ]
    assert "temperature" not in body  # reasoning models reject it
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["items"] == SCENES_SCHEMA  # array root wrapped
    assert a.error is None and a.text == scenes
    assert a.usage == {
        "input_tokens": 100, "output_tokens": 50, "usd": pytest.approx((100 * 2.0 + 50 * 8.0) / 1e6),
        "api_calls": 1, "retries": 0,
    }  # fmt: skip


def test_429_honours_retry_after_then_succeeds():
    faults = iter(["429", "429", None])
    with FakeAPIServer("openai", faults=lambda rec: next(faults), retry_after=0.3) as srv:
        b = backend("designer", "openai", api(srv, max_retries=3, backoff_initial_s=0.001))
        [a] = b.complete([req()])
    t = [r.t for r in srv.records]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.29 and t[2] - t[1] >= 0.29  # backoff alone would be ~1 ms
    assert a.error is None and a.usage["retries"] == 2 and a.usage["api_calls"] == 3


def test_bounded_tries_then_counted_failure():
    with FakeAPIServer("openai", faults=lambda rec: "429", retry_after=0.0) as srv:
        b = backend("designer", "openai", api(srv, max_retries=2))
        a429 = b.complete([req()])[0]
    assert len(srv.records) == 3
    assert a429.error == "rate_limited_exhausted" and a429.text is None
    assert a429.usage["api_calls"] == 3 and a429.usage["retries"] == 2 and a429.usage["usd"] == 0
    assert "429" in a429.meta["last_error"]
    with FakeAPIServer("openai", faults=lambda rec: "500") as srv:
        a500 = backend("designer", "openai", api(srv, max_retries=1)).complete([req()])[0]
    assert a500.error == "server_error" and len(srv.records) == 2


def test_slow_server_is_a_timeout():
    with FakeAPIServer("openai", faults=lambda rec: "slow", slow_s=1.5) as srv:
        b = backend("designer", "openai", api(srv, timeout_s=0.2, max_retries=1))
        t0 = time.monotonic()
        [a] = b.complete([req()])
        elapsed = time.monotonic() - t0
    assert a.error == "timeout" and a.usage["api_calls"] == 2
    assert elapsed < 1.2  # gave up on each try after ~0.2 s, did not wait for the server


@pytest.mark.parametrize(
    "fault,outcome,has_text",
    [("safety", "safety_block", False), ("refusal", "refusal", True), ("empty", "empty_answer", True),
     ("truncated", "truncated", True), ("malformed", "malformed_response", False)],
)  # fmt: skip
def test_untrusted_answers_are_named_outcomes(fault, outcome, has_text):
    with FakeAPIServer("openai", faults=lambda rec: fault) as srv:
        [a] = backend("designer", "openai", api(srv, max_retries=1)).complete([req()])
    assert a.error == outcome
    assert (a.text is not None) == has_text
    # content outcomes are answers (billed, not retried); a garbled body is retried
    assert len(srv.records) == (2 if fault == "malformed" else 1)


def test_key_echoed_by_server_never_leaves_the_backend():
    with FakeAPIServer("openai", faults=lambda rec: "auth_echo") as srv:
        [a] = backend("designer", "openai", api(srv)).complete([req()])
    assert len(srv.records) == 1  # 401 is not retried
    assert a.error == "auth_error"
    dumped = json.dumps({"text": a.text, "error": a.error, "meta": a.meta})
    assert OPENAI_KEY not in dumped and "Incorrect API key" in dumped and "[REDACTED]" in dumped


def test_redact_scrubs_key_shapes_and_env_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "plainvalue-without-prefix")
    s = redact("a plainvalue-without-prefix b sk-abc123def456 c AIzaSyA1234567890abcdefgh d ?key=zzz&x=1")
    assert "plainvalue" not in s and "sk-abc" not in s and "AIzaSy" not in s and "zzz" not in s
    assert redact(None) is None


def test_preflight_names_the_missing_variable_and_options_are_strict(monkeypatch):
    cls = backend_class("designer", "openai")
    ctx = context({})
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendUnavailable, match="OPENAI_API_KEY"):
        cls.preflight(cls.Options(), ctx)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    cls.preflight(cls.Options(), ctx)
    with pytest.raises(BackendUnavailable, match="api.prices"):  # a budget needs a price
        cls.preflight(cls.Options(model="my-finetune"), context({"max_cost_usd": 1.0}))
    with pytest.raises(Exception, match="extra"):
        cls.Options.model_validate({"modle": "o3"})


def test_every_call_carries_an_output_cap_by_default():
    """The cap bounds what one call can cost, reasoning tokens included: 25,000 by default (what
    OpenAI advises reserving for a reasoning model), a role's options.max_completion_tokens else."""
    with FakeAPIServer("openai", responder=lambda rec: "[]") as srv:
        backend("designer", "openai", api(srv)).complete([req(1)])
        backend("designer", "openai", api(srv), {"max_completion_tokens": 4000}).complete([req(2)])
    assert [rec.body.get("max_completion_tokens") for rec in srv.records] == [25000, 4000]
