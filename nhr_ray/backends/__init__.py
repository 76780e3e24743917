"""Built-in backends. Simulation backends register eagerly (they are light); real backends register
lazily, so importing nhr_ray never imports torch, diffusers, vllm or an API SDK."""

from nhr_ray.backends import sim  # noqa: F401  (registers 'sim' for every role kind)
