"""Hosted model APIs (OpenAI, Gemini): endpoints, retries, rate limits, prices, the spend budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nhr_ray.config.base import Strict

class ApiCallPolicy(Strict):
    """How one provider's calls are timed, retried and rate-limited (shared by its backends)."""

    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout; a request past it is a 'timeout' try.")
    max_retries: int = Field(
        5, ge=0, description="Retries after the first try on 429, 5xx, timeouts and connection errors (the SDK's own retries are off)."
    )
    backoff_initial_s: float = Field(1.0, ge=0, description="First backoff; doubles per retry, full jitter, at least Retry-After.")
    backoff_max_s: float = Field(60.0, ge=0, description="Cap on one backoff sleep (a longer Retry-After is cut to this).")
    concurrency: int = Field(8, ge=1, description="Requests in flight per actor (a thread pool of this many workers).")
    requests_per_minute: float | None = Field(
        None, gt=0, description="Cluster-wide request rate for this provider and model, shared by every actor (None: unlimited)."
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="Cluster-wide token rate (input + expected output, settled with the real usage). None: unlimited."
    )
    burst_s: float = Field(1.0, gt=0, description="Bucket depth in seconds of the rate: the largest burst after an idle spell.")


class OpenAIConfig(ApiCallPolicy):
    base_url: str | None = Field(None, description="API root, e.g. http://127.0.0.1:8000/v1 (None: the SDK default, api.openai.com).")
    model: str = Field("o3", description="Chat Completions model (paper: o3). A role's options.model overrides it.")
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        "medium", description="Sent as reasoning_effort for reasoning models (None: not sent)."
    )


class GeminiConfig(ApiCallPolicy):
    base_url: str | None = Field(None, description="API root, e.g. http://127.0.0.1:8001 (None: the SDK default for the chosen API).")
    model: str = Field(
        "gemini-2.5-flash",
        description="Model id, any string: a base model, tunedModels/<id>, or a Vertex endpoint path for a tuned validator. A role's options.model overrides it.",
    )
    vertexai: bool = Field(False, description="Use Vertex AI (project, location, ADC credentials) instead of the Gemini Developer API.")
    project: str | None = Field(None, description="Vertex AI project (None: GOOGLE_CLOUD_PROJECT).")
    location: str | None = Field(None, description="Vertex AI location, e.g. us-central1 (None: GOOGLE_CLOUD_LOCATION).")
    api_version: str = Field(
        "v1beta", description="API version in the URL path (/v1beta/models/...). With vertexai and this key unset: v1."
    )


class ModelPrice(Strict):
    input_per_m: float = Field(ge=0, description="USD per 1M input tokens (images count as the tokens the API reports).")
    output_per_m: float = Field(ge=0, description="USD per 1M output tokens, reasoning/thinking tokens included.")


def _default_prices() -> dict[str, ModelPrice]:
    # List prices per 1M tokens (USD) as published by the providers; edit them for your contract.
    return {
        "o3": ModelPrice(input_per_m=2.0, output_per_m=8.0),
        "o4-mini": ModelPrice(input_per_m=1.1, output_per_m=4.4),
        "gpt-4.1": ModelPrice(input_per_m=2.0, output_per_m=8.0),
        "gemini-2.5-flash": ModelPrice(input_per_m=0.30, output_per_m=2.50),
        "gemini-2.5-pro": ModelPrice(input_per_m=1.25, output_per_m=10.0),
        "gemini-2.0-flash": ModelPrice(input_per_m=0.10, output_per_m=0.40),
    }


class ApiConfig(Strict):
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig, description="OpenAI (key from OPENAI_API_KEY).")
    gemini: GeminiConfig = Field(
        default_factory=GeminiConfig, description="Gemini (key from GEMINI_API_KEY or GOOGLE_API_KEY; Vertex AI uses ADC)."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=_default_prices,
        description="USD per 1M tokens by model id; a model without an exact entry takes the longest key it starts with (a tuned 'gemini-2.0-flash-...' is priced as gemini-2.0-flash).",
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="Stop issuing API calls once the run's estimated spend (all providers, all actors) reaches this; later items fail with 'cost_budget_exhausted'."
    )

    def price(self, model: str) -> ModelPrice | None:
        if model in self.prices:
            return self.prices[model]
        tail = model.rsplit("/", 1)[-1]
        keys = [k for k in self.prices if model.startswith(k) or tail.startswith(k)]
        return self.prices[max(keys, key=len)] if keys else None
