"""Shared by the API backend tests: keys in the environment, a context with an `api` section."""

from __future__ import annotations

import types

from nhr_ray.config import ApiConfig
from nhr_ray.roles import BackendContext, build_backend

OPENAI_KEY = "sk-test-0penAIsecretKEY1234567890"
GEMINI_KEY = "AIzaTESTsecretGEMINIkey1234567890xyz"


def context(api: dict, role: str = "validator") -> BackendContext:
    cfg = types.SimpleNamespace(api=ApiConfig.model_validate(api))
    return BackendContext(role=role, run_seed=0, num_gpus=0, run_config=cfg)


def backend(role: str, name: str, api: dict, options: dict | None = None):
    b = build_backend(role, name, options or {}, context(api, role))
    b.setup()
    return b
