"""Built-in backends. Simulation backends register eagerly (they are light); real backends register
lazily, so importing nhr_ray never imports torch, diffusers, vllm or an API SDK."""

from nhr_ray.backends import sim  # noqa: F401  (registers 'sim' for every role kind)
from nhr_ray.roles import register_lazy

register_lazy(
    "t2i", "flux", "nhr_ray.backends.diffusers_t2i", "FluxGenerator",
    "FLUX text-to-image via diffusers (FLUX.1-schnell, 4 steps, by default)",
)  # fmt: skip
register_lazy(
    "editor", "diffusers", "nhr_ray.backends.diffusers_edit", "DiffusersEditor",
    "diffusers editor: FLUX.1 Kontext, Qwen-Image-Edit or InstructPix2Pix; output at the source's size",
)  # fmt: skip
register_lazy(
    "vlm", "transformers", "nhr_ray.backends.transformers_vlm", "TransformersJudge",
    "Qwen2.5-VL judge under transformers, greedy",
)  # fmt: skip
register_lazy(
    "vlm", "vllm", "nhr_ray.backends.vllm_vlm", "VLLMJudge",
    "Qwen2.5-VL judge on a vLLM engine inside the actor, guided JSON where asked",
)  # fmt: skip
register_lazy(
    "vlm", "openai_server", "nhr_ray.backends.openai_vlm", "OpenAIServerJudge",
    "judge behind an OpenAI-compatible chat-completions endpoint (e.g. `vllm serve`)",
)  # fmt: skip

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
