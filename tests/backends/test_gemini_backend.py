"""The Gemini validator and inverter through the real google-genai SDK against a local server."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from nhr_ray.parsing import SCORES_SCHEMA, parse_scores
from nhr_ray.roles import BackendUnavailable, TextRequest, VLMRequest, backend_class
from nhr_ray.testing.fake_api import FakeAPIServer

from api_helpers import GEMINI_KEY, backend, context, api_keys  # noqa: F401  (api_keys: autouse fixture)


def api(srv, **kw):
    return {"gemini": {"base_url": srv.base_url, "timeout_s": 2.0, "max_retries": 2, "backoff_initial_s": 0.01, **kw}}


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(2)]


def vreq(i=0, imgs=None):
    return VLMRequest(f"A{i}", "edit_scores", f"Instruction: remove the cup #{i}", imgs or images(i), SCORES_SCHEMA)


def test_validator_sends_both_images_prompt_temperature_schema_key():
    imgs = images(3)
    with FakeAPIServer("gemini") as srv:
        b = backend("validator", "gemini", api(srv, model="tunedModels/nhr-validator-7"))
        [a] = b.ask([vreq(3, imgs)])
        b.teardown()
    [rec] = srv.records
    assert rec.path == "/v1beta/tunedModels/nhr-validator-7:generateContent"  # model id is free
    assert rec.headers["x-goog-api-key"] == GEMINI_KEY
    [content] = rec.body["contents"]
    parts = content["parts"]
    sent = [np.asarray(Image.open(io.BytesIO(base64.urlsafe_b64decode(p["inlineData"]["data"])))) for p in parts[:2]]
    assert all(p["inlineData"]["mime_type"] == "image/png" for p in parts[:2])
    assert np.array_equal(sent[0], imgs[0]) and np.array_equal(sent[1], imgs[1])  # original, then edited
    assert parts[2] == {"text": "Instruction: remove the cup #3"}
    gen = rec.body["generationConfig"]
    assert gen["temperature"] == 0.0
    assert gen["responseMimeType"] == "application/json" and gen["responseJsonSchema"] == SCORES_SCHEMA
    assert a.error is None and parse_scores(a.text).value == {"adherence": 4.8, "aesthetics": 4.9}
    # 600 in + (20 + 10 thinking) out; a tuned id with no api.prices entry is unpriced (usd 0)
    assert a.usage["input_tokens"] == 600 and a.usage["output_tokens"] == 30 and a.usage["api_calls"] == 1
    assert a.usage["usd"] == 0


def test_inverter_text_and_price_of_default_model():
    with FakeAPIServer("gemini", responder=lambda rec: "Place a red apple at the centre of the table") as srv:
        b = backend("inverter", "gemini", api(srv), {"temperature": 0.2, "thinking_budget": 0})
        [a] = b.complete([TextRequest("P1", "invert", "Scene: ...", system="Write one instruction.")])
    [rec] = srv.records
    assert rec.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert rec.body["systemInstruction"]["parts"][0]["text"] == "Write one instruction."
    assert rec.body["generationConfig"]["temperature"] == 0.2
    # the SDK writes this field in snake_case (the API's JSON parser takes both spellings)
    assert list(rec.body["generationConfig"]["thinkingConfig"].values()) == [0]
    assert a.text == "Place a red apple at the centre of the table" and a.error is None
    assert a.usage["usd"] == pytest.approx((600 * 0.30 + 30 * 2.50) / 1e6)


@pytest.mark.parametrize(
    "fault,outcome",
    [("safety", "safety_block"), ("empty", "empty_answer"), ("truncated", "truncated"),
     ("refusal", "refusal"), ("malformed", "malformed_response")],
)  # fmt: skip
def test_untrusted_answers_are_named_outcomes(fault, outcome):
    with FakeAPIServer("gemini", faults=lambda rec: fault) as srv:
        [a] = backend("validator", "gemini", api(srv, max_retries=1)).ask([vreq()])
    assert a.error == outcome
    if fault == "truncated":
        assert a.text == '{"adherence": 4.8, "aes'[: len(a.text)] and not parse_scores(a.text).ok
    if fault in ("safety", "empty"):
        assert a.text is None


def test_500_then_429_with_retry_after_then_answer():
    faults = iter(["500", "429", None])
    with FakeAPIServer("gemini", faults=lambda rec: next(faults), retry_after=0.25) as srv:
        [a] = backend("validator", "gemini", api(srv, max_retries=3, backoff_initial_s=0.001)).ask([vreq()])
    t = [r.t for r in srv.records]
    assert a.error is None and a.usage["retries"] == 2 and len(t) == 3
    assert t[2] - t[1] >= 0.24


def test_timeout_then_counted_failure_key_redacted():
    with FakeAPIServer("gemini", faults=lambda rec: "slow", slow_s=1.5) as srv:
        [a] = backend("validator", "gemini", api(srv, timeout_s=0.2, max_retries=1)).ask([vreq()])
    assert a.error == "timeout" and a.usage["api_calls"] == 2
    with FakeAPIServer("gemini", faults=lambda rec: "auth_echo") as srv:
        [a] = backend("validator", "gemini", api(srv)).ask([vreq()])
    assert a.error == "auth_error" and GEMINI_KEY not in json.dumps(a.meta) and "[REDACTED]" in a.meta["last_error"]


def test_cost_budget_stops_issuing_calls():
    # each call costs (600 * 0.30 + 30 * 2.50) / 1e6 = 0.000255 USD; the budget allows 3
    with FakeAPIServer("gemini") as srv:
        b = backend("validator", "gemini", api(srv, concurrency=1) | {"max_cost_usd": 0.0007})
        answers = b.ask([vreq(i) for i in range(6)])
    errors = [a.error for a in answers]
    assert errors == [None, None, None, "cost_budget_exhausted", "cost_budget_exhausted", "cost_budget_exhausted"]
    assert len(srv.records) == 3
    assert all(a.usage["api_calls"] == 0 for a in answers[3:])


def test_google_api_key_fallback_and_preflight(monkeypatch):
    cls = backend_class("validator", "gemini")
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(BackendUnavailable, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        cls.preflight(cls.Options(), context({}))
    cls.preflight(cls.Options(), context({"gemini": {"vertexai": True}}))  # Vertex: ADC, no key needed
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaFALLBACKkey0987654321abcd")
    cls.preflight(cls.Options(), context({}))
    with FakeAPIServer("gemini") as srv:
        backend("validator", "gemini", api(srv)).ask([vreq()])
    assert srv.records[0].headers["x-goog-api-key"] == "AIzaFALLBACKkey0987654321abcd"


def test_vertex_ai_by_config():
    """vertexai: true without project/location is Vertex express mode (API key); the path is Vertex's."""
    with FakeAPIServer("gemini") as srv:
        b = backend("inverter", "gemini", {"gemini": {"base_url": srv.base_url, "vertexai": True}})
        [a] = b.complete([TextRequest("P2", "invert", "Scene: a cup")])
    [rec] = srv.records
    assert rec.path == "/v1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert rec.headers["x-goog-api-key"] == GEMINI_KEY and a.error is None


def test_every_call_carries_an_output_cap_small_for_judges():
    """Thinking tokens count against the cap, so it bounds what one call can cost: 256 tokens for a
    judge (its answer is two scores), 1024 for a text role (the inverter writes one instruction);
    only an explicit null lifts it."""
    with FakeAPIServer("gemini", responder=lambda rec: "Put the cup back.") as srv:
        backend("validator", "gemini", api(srv)).ask([vreq()])
        backend("inverter", "gemini", api(srv)).complete([TextRequest("P3", "invert", "Scene: a cup")])
        backend("inverter", "gemini", api(srv), {"max_output_tokens": None}).complete([TextRequest("P4", "invert", "x")])
    assert [rec.body["generationConfig"].get("maxOutputTokens") for rec in srv.records] == [256, 1024, None]
