"""Scrub API keys from any text that leaves a backend (errors, raw answers, metadata).

Two layers: the actual key values found in the environment or the node's secrets file, and
patterns that look like keys (OpenAI `sk-...`, Google `AIza...`, bearer tokens, `key=` query
parameters, key headers), so a key that reached us some other way is still caught.
"""

from __future__ import annotations

import os
import re

KEY_ENV_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
MASK = "[REDACTED]"

_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(r"(?i)([?&](?:key|api_key|access_token)=)[^&\s\"']+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]


def secret_values() -> list[str]:
    """The key values set in this process's environment or the node's secrets file (only those
    long enough to be keys)."""
    from nhr_ray.secretfile import file_values

    values = [os.environ.get(name, "").strip() for name in KEY_ENV_VARS] + file_values(KEY_ENV_VARS)
    return [v for v in values if len(v) >= 6]


def redact(text: object, secrets: list[str] | None = None) -> str | None:
    """`text` with every key-like substring replaced by [REDACTED]; None stays None."""
    if text is None:
        return None
    s = str(text)
    for value in sorted(set(secret_values() + list(secrets or [])), key=len, reverse=True):
        if value:
            s = s.replace(value, MASK)
    for pat in _PATTERNS:
        s = pat.sub(lambda m: (m.group(1) if m.re.groups else "") + MASK, s)
    return s
