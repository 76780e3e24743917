"""OpenAI Chat Completions as a text model (the prompt designer; paper: o3).

Connection, retries and limits come from `api.openai`; per-role choices from the role's options.
The key is read in setup() from OPENAI_API_KEY (the environment, else the node's secrets file) and
never leaves the SDK client.
"""

from __future__ import annotations

from typing import Any, Literal

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
from nhr_ray.roles import Answer, BackendOptions, BackendUnavailable, TextModel, TextRequest

KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MAX_COMPLETION_TOKENS = 25_000


class OpenAIOptions(BackendOptions):
    model: str | None = Field(None, description="Model for this role; None: api.openai.model.")
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        None, description="Overrides api.openai.reasoning_effort for this role."
    )
    max_completion_tokens: int | None = Field(
        DEFAULT_MAX_COMPLETION_TOKENS,
        ge=1,
        description="Output cap per call, reasoning tokens included (what a call can cost at most); hitting it is "
        "'truncated'. Default: the 25,000 OpenAI advises reserving for a reasoning model's reasoning and answer. "
        "None: the model's own limit (uncapped spend per call).",
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sent only if set (reasoning models reject it).")
    expected_output_tokens: int = Field(
        4000, ge=0, description="Output tokens booked against tokens_per_minute before a call (settled after)."
    )


def classify(exc: BaseException) -> Failure:
    import openai

    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", True, msg)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection_error", True, msg)
    if isinstance(exc, openai.APIStatusError):
        return status_failure(exc.status_code, msg, retry_after_seconds(exc.response.headers, exc.body))
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("malformed_response", False, msg)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return Failure("safety_block", False, msg)
    if isinstance(exc, openai.LengthFinishReasonError):
        return Failure("truncated", False, msg)
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):  # body not JSON / wrong shape
        return Failure("malformed_response", True, msg)  # a garbled 200 is usually a proxy glitch
    return transport_failure(exc) or Failure("internal_error", False, msg)


def read_completion(resp: Any) -> Reply:
    """A ChatCompletion into text and outcome; any surprise in its shape is 'malformed_response'."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        return Reply(None, "malformed_response", meta={"body": str(resp)[:300]})
    usage = getattr(resp, "usage", None)
    tin = int(getattr(usage, "prompt_tokens", 0) or 0)
    tout = int(getattr(usage, "completion_tokens", 0) or 0)
    if not choices:
        return Reply(None, "empty_answer", tin, tout)
    choice = choices[0]
    msg = choice.message
    finish = choice.finish_reason
    meta = {"finish_reason": finish, "model": getattr(resp, "model", None)}
    text = msg.content if msg is not None else None
    if msg is not None and getattr(msg, "refusal", None):
        return Reply(msg.refusal, "refusal", tin, tout, meta)
    if finish == "content_filter":
        return Reply(text, "safety_block", tin, tout, meta)
    if finish == "length":
        return Reply(text, "truncated", tin, tout, meta)
    if text is None or not text.strip():
        return Reply(text, "empty_answer", tin, tout, meta)
    return Reply(text, None, tin, tout, meta)


def response_format(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """json_schema response format. OpenAI wants an object at the root, so an array schema (the
    scene list) is wrapped as {"items": [...]}; the stages' JSON extraction finds the array inside."""
    if not schema:
        return None
    if schema.get("type") != "object":
        schema = {"type": "object", "properties": {"items": schema}, "required": ["items"]}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}}


class OpenAIText(TextModel):
    """OpenAI Chat Completions through the official SDK (prompt designer; paper: o3)."""

    name = "openai"
    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions, context):
        super().__init__(options, context)
        self._client = None
        self._caller = None

    @classmethod
    def preflight(cls, options, context) -> None:
        try:
            import openai  # noqa: F401
        except ImportError:
            raise BackendUnavailable("backend 'openai' needs the openai package: pip install openai") from None
        if not api_key((KEY_ENV,)):
            raise BackendUnavailable(
                f"backend 'openai' needs the API key {KEY_ENV}: in the environment, or in the node's secrets file "
                "(NHR_SECRETS_FILE)"
            )
        api = api_config(context)
        require_price(api, options.model or api.openai.model)

    def setup(self) -> None:
        import openai

        api = api_config(self.context)
        cfg = api.openai
        self.model = self.options.model or cfg.model
        self.effort = self.options.reasoning_effort or cfg.reasoning_effort
        self._client = openai.OpenAI(
            api_key=api_key((KEY_ENV,)) or "", base_url=cfg.base_url, max_retries=0, timeout=cfg.timeout_s
        )
        self._caller = make_caller(
            "openai", self.model, cfg, api, classify, cfg.requests_per_minute, cfg.tokens_per_minute, seed=self.context.run_seed,
            limits=self.context.limits,
        )

    def teardown(self) -> None:
        if self._caller is not None:
            self._caller.close()
        if self._client is not None:
            self._client.close()
        self._client = self._caller = None

    def _send(self, req: TextRequest):
        messages = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        messages.append({"role": "user", "content": req.prompt})
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.effort:
            kwargs["reasoning_effort"] = self.effort
        if self.options.max_completion_tokens:
            kwargs["max_completion_tokens"] = self.options.max_completion_tokens
        if self.options.temperature is not None:
            kwargs["temperature"] = self.options.temperature
        fmt = response_format(req.json_schema)
        if fmt:
            kwargs["response_format"] = fmt

        def send() -> Reply:
            return read_completion(self._client.chat.completions.create(**kwargs))

        return send

    def complete(self, requests: list[TextRequest]) -> list[Answer]:
        if self._caller is None:
            self.setup()
        est = [estimate_tokens(r.system + r.prompt, 0, 0, self.options.expected_output_tokens) for r in requests]
        answers = self._caller.map([self._send(r) for r in requests], est)
        for a in answers:
            a.meta.setdefault("model", self.model)
        return answers
