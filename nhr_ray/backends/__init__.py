"""Built-in backends: one line each, (kind, name) -> the class's import path and a description.

Nothing is imported here: a backend's module is imported when a run (or `nhr-ray backends`) first
asks for its class, so importing nhr_ray or loading a config never imports torch, diffusers, vllm,
an API SDK, OpenCV or the simulation world. Where a backend's options are checked while a config is
validated, `options` names its Options model in a light module (the simulation's).
"""

from __future__ import annotations

from typing import NamedTuple


class BackendEntry(NamedTuple):
    cls: str  # "module:Class"
    description: str
    options: str | None = None  # "module:Options" where importing `cls` would be heavy; None: cls.Options


_SIM_OPTIONS = "nhr_ray.backends.sim_options"

BUILTIN: dict[tuple[str, str], BackendEntry] = {
    # SIMULATION: the world of nhr_ray/backends/sim, one backend per role kind
    ("text", "sim"): BackendEntry(
        "nhr_ray.backends.sim.text:SimText", "SIMULATION: designs scenes in the world's language; writes inverse instructions",
        f"{_SIM_OPTIONS}:SimTextOptions",
    ),
    ("t2i", "sim"): BackendEntry(
        "nhr_ray.backends.sim:SimT2I", "SIMULATION: parses the world's scene language and draws the objects (some go missing)",
        f"{_SIM_OPTIONS}:SimT2IOptions",
    ),
    ("editor", "sim"): BackendEntry(
        "nhr_ray.backends.sim:SimEditor",
        "SIMULATION: draws an outcome per attempt (clean, partial, drift, noise, ...) and repaints",
        f"{_SIM_OPTIONS}:SimEditorOptions",
    ),
    ("vlm", "sim"): BackendEntry(
        "nhr_ray.backends.sim:SimJudge", "SIMULATION: answers from the true outcome with calibrated noise, in real answer formats",
        f"{_SIM_OPTIONS}:SimJudgeOptions",
    ),
    # local models
    ("t2i", "flux"): BackendEntry(
        "nhr_ray.backends.diffusers_t2i:FluxGenerator", "FLUX text-to-image via diffusers (FLUX.1-schnell, 4 steps, by default)"
    ),
    ("editor", "diffusers"): BackendEntry(
        "nhr_ray.backends.diffusers_edit:DiffusersEditor",
        "diffusers editor: FLUX.1 Kontext, Qwen-Image-Edit or InstructPix2Pix; output at the source's size",
    ),
    ("vlm", "transformers"): BackendEntry(
        "nhr_ray.backends.transformers_vlm:TransformersJudge", "Qwen2.5-VL judge under transformers, greedy"
    ),
    ("vlm", "vllm"): BackendEntry(
        "nhr_ray.backends.vllm_vlm:VLLMJudge", "Qwen2.5-VL judge on a vLLM engine inside the actor, guided JSON where asked"
    ),
    ("vlm", "openai_server"): BackendEntry(
        "nhr_ray.backends.openai_vlm:OpenAIServerJudge",
        "judge behind an OpenAI-compatible chat-completions endpoint (e.g. `vllm serve`)",
    ),
    # hosted APIs through their official SDKs (retried, rate-limited across the cluster, cost-counted)
    ("text", "openai"): BackendEntry(
        "nhr_ray.backends.api.openai_backend:OpenAIText",
        "OpenAI Chat Completions via the openai SDK (prompt designer; paper: o3). Key: OPENAI_API_KEY.",
    ),
    ("text", "gemini"): BackendEntry(
        "nhr_ray.backends.api.gemini_backend:GeminiText",
        "Gemini generateContent via google-genai (inverter; paper: Gemini 2.5 Flash). Key: GEMINI_API_KEY.",
    ),
    ("vlm", "gemini"): BackendEntry(
        "nhr_ray.backends.api.gemini_backend:GeminiJudge",
        "Gemini generateContent, images inline, JSON schema where asked, temperature 0 (hard validator; any VLM role).",
    ),
}  # fmt: skip
