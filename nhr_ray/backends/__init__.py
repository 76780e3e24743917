"""Built-in backends. Simulation backends register eagerly (they are light); real backends register
lazily, so importing nhr_ray never imports torch, diffusers, vllm or an API SDK."""

from nhr_ray.backends import sim  # noqa: F401  (registers 'sim' for every role kind)
from nhr_ray.roles import register_lazy

# Hosted APIs through their official SDKs (retried, rate-limited across the cluster, cost-counted).
register_lazy(
    "text", "openai", "nhr_ray.backends.api.openai_backend", "OpenAIText",
    "OpenAI Chat Completions via the openai SDK (prompt designer; paper: o3). Key: OPENAI_API_KEY.",
)  # fmt: skip
register_lazy(
    "text", "gemini", "nhr_ray.backends.api.gemini_backend", "GeminiText",
    "Gemini generateContent via google-genai (inverter; paper: Gemini 2.5 Flash). Key: GEMINI_API_KEY.",
)  # fmt: skip
register_lazy(
    "vlm", "gemini", "nhr_ray.backends.api.gemini_backend", "GeminiJudge",
    "Gemini generateContent, images inline, JSON schema where asked, temperature 0 (hard validator; any VLM role).",
)  # fmt: skip
