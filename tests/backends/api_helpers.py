"""Shared by the API backend tests: keys in the environment, a context with an `api` section."""

from __future__ import annotations

import types

import pytest

from nhr_ray.config import ApiConfig
from nhr_ray.roles import BackendContext, build_backend
from nhr_ray.runtime.ratelimit import reset_local

OPENAI_KEY = "sk-test-0penAIsecretKEY1234567890"
GEMINI_KEY = "AIzaTESTsecretGEMINIkey1234567890xyz"


def context(api: dict, role: str = "validator") -> BackendContext:
    cfg = types.SimpleNamespace(api=ApiConfig.model_validate(api))
    return BackendContext(role=role, run_seed=0, num_gpus=0, run_config=cfg)


def backend(role: str, name: str, api: dict, options: dict | None = None):
    b = build_backend(role, name, options or {}, context(api, role))
    b.setup()
    return b


@pytest.fixture(autouse=True)
def api_keys(monkeypatch):
    """Known fake keys in the environment and fresh in-process limiters, for each test of a module
    that imports this fixture."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    reset_local()
    yield
    reset_local()
