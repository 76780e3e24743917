"""Hosted-API backends (OpenAI, Gemini) and what they share: retries, limits, cost, redaction.
Nothing here imports an SDK at import time; the SDKs load in the backend modules' setup()."""
