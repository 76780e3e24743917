import pytest

from nhr_ray.runtime.ratelimit import reset_local

from .api_helpers import GEMINI_KEY, OPENAI_KEY


@pytest.fixture(autouse=True)
def api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    reset_local()
    yield
    reset_local()
