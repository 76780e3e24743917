"""Gemini generateContent through google-genai: the hard validator (VLM) and the inverter (text).

Gemini Developer API by default (key from GEMINI_API_KEY or GOOGLE_API_KEY, in the environment or
the node's secrets file, sent as x-goog-api-key); Vertex AI with `api.gemini.vertexai: true` (project, location, ADC credentials,
or an express-mode key). The model is a free string, so a tuned validator's id works.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydantic import Field

from nhr_ray.backends.api.common import (
    Failure,
    Reply,
    api_config,
    api_key,
    estimate_tokens,
    make_caller,
    require_price,
    retry_after_seconds,
    status_failure,
    transport_failure,
)
from nhr_ray.roles import Answer, BackendOptions, BackendUnavailable, TextModel, TextRequest, VisionJudge, VLMRequest

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
_SAFETY = {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "MODEL_ARMOR"}
_REFUSAL = {"RECITATION", "LANGUAGE", "IMAGE_RECITATION"}


JUDGE_MAX_OUTPUT_TOKENS = 256  # a judge answers {"adherence": x, "aesthetics": y}: ~20 tokens
TEXT_MAX_OUTPUT_TOKENS = 1024  # the inverter writes one instruction


class GeminiOptions(BackendOptions):
    model: str | None = Field(None, description="Model for this role (e.g. a tuned validator id); None: api.gemini.model.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (paper: 0 for the validator).")
    max_output_tokens: int | None = Field(
        TEXT_MAX_OUTPUT_TOKENS,
        ge=1,
        description="Output cap per call, thinking tokens included (what a call can cost at most); hitting it is "
        "'truncated'. Default 1024 for text roles, 256 for judges. None: the model's own limit (uncapped).",
    )
    thinking_budget: int | None = Field(
        None, ge=0, description="Thinking tokens for 2.5 models (0 turns thinking off; None: the model's default, "
        "which can use up max_output_tokens before the answer: set it with a thinking model)."
    )
    expected_output_tokens: int = Field(256, ge=0, description="Output tokens booked against tpm before a call.")


class GeminiJudgeOptions(GeminiOptions):
    max_output_tokens: int | None = Field(
        JUDGE_MAX_OUTPUT_TOKENS,
        ge=1,
        description="Output cap per call, thinking tokens included; hitting it is 'truncated'. Default 256: a judge "
        "answers with two scores. None: the model's own limit (uncapped).",
    )


def gemini_key() -> str | None:
    return api_key(KEY_ENVS)


def classify(exc: BaseException) -> Failure:
    from google.genai import errors

    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, errors.APIError):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return status_failure(exc.code, msg, retry_after_seconds(headers, exc.details))
    found = transport_failure(exc)
    if found:
        return found
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):  # a 200 body we cannot read
        return Failure("malformed_response", True, msg)  # a garbled 200 is usually a proxy glitch
    return Failure("internal_error", False, msg)


def _name(v: Any) -> str | None:
    if v is None:
        return None
    return getattr(v, "name", None) or str(v).rsplit(".", 1)[-1]


def read_response(resp: Any) -> Reply:
    """A GenerateContentResponse into text and outcome. Blocked prompts and empty candidate lists
    give `.text is None` in the SDK; here each gets its own name."""
    um = getattr(resp, "usage_metadata", None)
    tin = int(getattr(um, "prompt_token_count", 0) or 0)
    tout = int(getattr(um, "candidates_token_count", 0) or 0) + int(getattr(um, "thoughts_token_count", 0) or 0)
    fb = getattr(resp, "prompt_feedback", None)
    if fb is not None and getattr(fb, "block_reason", None):
        return Reply(None, "safety_block", tin, tout, {"block_reason": _name(fb.block_reason)})
    cands = getattr(resp, "candidates", None) or []
    if not cands:
        return Reply(None, "empty_answer", tin, tout)
    cand = cands[0]
    finish = _name(getattr(cand, "finish_reason", None))
    parts = getattr(getattr(cand, "content", None), "parts", None) or []
    text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False)) or None
    meta = {"finish_reason": finish, "model": getattr(resp, "model_version", None)}
    if finish in _SAFETY:
        return Reply(text, "safety_block", tin, tout, meta)
    if finish in _REFUSAL:
        return Reply(text, "refusal", tin, tout, meta)
    if finish == "MAX_TOKENS":
        return Reply(text, "truncated", tin, tout, meta)
    if text is None or not text.strip():
        return Reply(text, "empty_answer", tin, tout, meta)
    return Reply(text, None, tin, tout, meta)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Gemini:
    """Client, caller and one send per item, shared by the judge and the text model."""

    name = "gemini"
    Options = GeminiOptions

    def __init__(self, options: GeminiOptions, context):
        super().__init__(options, context)
        self._client = None
        self._caller = None

    @classmethod
    def preflight(cls, options, context) -> None:
        try:
            from google import genai  # noqa: F401
        except ImportError:
            raise BackendUnavailable("backend 'gemini' needs google-genai: pip install google-genai") from None
        api = api_config(context)
        if not api.gemini.vertexai and gemini_key() is None:
            raise BackendUnavailable(
                "backend 'gemini' needs the API key GEMINI_API_KEY or GOOGLE_API_KEY: in the environment, or in "
                "the node's secrets file (NHR_SECRETS_FILE); or api.gemini.vertexai: true with Google Cloud credentials"
            )
        require_price(api, options.model or api.gemini.model)

    def setup(self) -> None:
        from google import genai
        from google.genai import types

        api = api_config(self.context)
        cfg = api.gemini
        self.model = self.options.model or cfg.model
        version = cfg.api_version
        if cfg.vertexai and "api_version" not in cfg.model_fields_set:
            version = "v1"  # Vertex AI has no v1beta; the default is meant for the Developer API
        # no retry_options: the SDK must not retry behind our counts
        http = types.HttpOptions(base_url=cfg.base_url, api_version=version, timeout=int(cfg.timeout_s * 1000))
        if cfg.vertexai:
            kw: dict[str, Any] = {"vertexai": True, "http_options": http}
            if cfg.project or cfg.location:
                kw.update(project=cfg.project, location=cfg.location)
            else:
                kw["api_key"] = gemini_key()
            self._client = genai.Client(**kw)
        else:
            self._client = genai.Client(api_key=gemini_key(), http_options=http)
        self._caller = make_caller(
            "gemini", self.model, cfg, api, classify, cfg.requests_per_minute, cfg.tokens_per_minute, seed=self.context.run_seed,
            limits=self.context.limits,
        )

    def teardown(self) -> None:
        if self._caller is not None:
            self._caller.close()
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                pass
        self._client = self._caller = None

    def _config(self, system: str, schema: dict[str, Any] | None, max_tokens: int | None = None):
        from google.genai import types

        kw: dict[str, Any] = {"temperature": self.options.temperature}
        if system:
            kw["system_instruction"] = system
        if max_tokens or self.options.max_output_tokens:
            kw["max_output_tokens"] = max_tokens or self.options.max_output_tokens
        if self.options.thinking_budget is not None:
            kw["thinking_config"] = types.ThinkingConfig(thinking_budget=self.options.thinking_budget)
        if schema:
            kw["response_mime_type"] = "application/json"
            kw["response_json_schema"] = schema
        return types.GenerateContentConfig(**kw)

    def _sender(self, contents: list, config):
        def send() -> Reply:
            return read_response(self._client.models.generate_content(model=self.model, contents=contents, config=config))

        return send

    def _run(self, sends, est) -> list[Answer]:
        answers = self._caller.map(sends, est)
        for a in answers:
            a.meta.setdefault("model", self.model)
        return answers


class GeminiJudge(_Gemini, VisionJudge):
    """Gemini generateContent as a VLM judge: images inline, temperature 0, JSON schema (validator)."""

    Options = GeminiJudgeOptions

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        from google.genai import types

        if self._caller is None:
            self.setup()
        sends, est = [], []
        for r in requests:
            parts = [
                types.Part.from_bytes(data=png_bytes(r.images[x]), mime_type="image/png") if isinstance(x, int)
                else types.Part.from_text(text=x)
                for x in r.content()
            ]  # fmt: skip
            contents = [types.Content(role="user", parts=parts)]
            sends.append(self._sender(contents, self._config("", r.json_schema, r.max_tokens)))
            est.append(estimate_tokens(r.prompt, len(r.images), 258, self.options.expected_output_tokens))
        return self._run(sends, est)


class GeminiText(_Gemini, TextModel):
    """Gemini generateContent as a text model (inverter; paper: Gemini 2.5 Flash)."""

    def complete(self, requests: list[TextRequest]) -> list[Answer]:
        if self._caller is None:
            self.setup()
        sends = [self._sender(r.prompt, self._config(r.system, r.json_schema)) for r in requests]
        est = [estimate_tokens(r.system + r.prompt, 0, 0, self.options.expected_output_tokens) for r in requests]
        return self._run(sends, est)
