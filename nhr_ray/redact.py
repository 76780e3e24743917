"""Scrub secrets from every text that leaves a process: error texts, model answers, verdicts, logs.

The one path: backends/_common.error_text (every real backend's error), the API backends' caller,
Stage's backend wrapper (every answer a stage sees), stages/base.error_verdict and the log records
of the driver and the actors (install_log_redaction) all call `redact`.

Two layers: the values of the key variables in the environment (the well-known ones, plus every
`*_env` option a run's roles name, such as openai_server's `api_key_env`) are replaced wherever they
occur, and patterns that look like keys (OpenAI `sk-...`, Google `AIza...`, bearer tokens, `key=`
query parameters, key headers) are replaced too, so a key that reached us some other way is caught.
"""

from __future__ import annotations

import logging
import os
import re
import traceback

KEY_ENV_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # fmt: skip
MASK = "[REDACTED]"
MIN_SECRET_CHARS = 6  # shorter values (a placeholder like "EMPTY") would mask ordinary words

_PATTERNS = [
    re.compile(r"(?<![A-Za-z0-9_\-])sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(r"(?i)([?&](?:key|api_key|access_token)=)[^&\s\"']+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]


def key_env_names(config=None) -> tuple[str, ...]:
    """KEY_ENV_VARS plus the variables a run config names in its roles' `*_env` options."""
    names = list(KEY_ENV_VARS)
    roles = getattr(config, "roles", None)
    for role in type(roles).model_fields if roles is not None else ():
        for k, v in (getattr(roles, role).options or {}).items():
            if k.endswith("_env") and isinstance(v, str) and v:
                names.append(v)
    return tuple(dict.fromkeys(names))


def secret_values(names: tuple[str, ...] | list[str] = KEY_ENV_VARS) -> list[str]:
    """The values of `names` set in this process's environment or the node's secrets file
    (NHR_SECRETS_FILE), only those long enough to be keys."""
    from nhr_ray.secretfile import file_values

    values = [os.environ.get(name, "").strip() for name in names] + file_values(tuple(names))
    return [v for v in values if len(v) >= MIN_SECRET_CHARS]


def redact(text: object, secrets: list[str] | None = None) -> str | None:
    """`text` with every key-like substring replaced by [REDACTED]; None stays None."""
    return scrub(text, sorted(set(secret_values() + list(secrets or [])), key=len, reverse=True))


def scrub(text: object, values: list[str]) -> str | None:
    """`text` with `values` (longest first) and every key-like pattern replaced by [REDACTED]."""
    if text is None:
        return None
    s = str(text)
    for value in values:
        if len(value) >= MIN_SECRET_CHARS:
            s = s.replace(value, MASK)
    for pat in _PATTERNS:
        s = pat.sub(lambda m: (m.group(1) if m.re.groups else "") + MASK, s)
    return s


class Redactor:
    """`redact` with a run's configured key variables. Values are read from the environment at each
    call, so a key set after construction (an actor's runtime env) is covered too."""

    def __init__(self, config=None, secrets: list[str] | None = None):
        self.names = key_env_names(config)
        self.extra = list(secrets or [])

    def secrets(self) -> list[str]:
        return secret_values(self.names) + self.extra

    def __call__(self, text: object) -> str | None:
        return redact(text, self.secrets())

    def now(self) -> "Redactor":
        """This redactor with the key values read once, now: for the many texts of one batch of
        answers, which all came back at one moment (a key rotated later is read at the next batch)."""
        return _Fixed(self, sorted(set(secret_values() + self.secrets()), key=len, reverse=True))

    def value(self, v):
        """Strings, and strings inside lists and dicts, redacted; anything else as it is."""
        if isinstance(v, str):
            return self(v)
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(x) for x in v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v


class _Fixed(Redactor):
    def __init__(self, base: Redactor, values: list[str]):
        self.names, self.extra, self.values = base.names, base.extra, values

    def __call__(self, text: object) -> str | None:
        return scrub(text, self.values)


def install_log_redaction(redactor: Redactor) -> None:
    """Every log record this process makes from now on passes `redactor`: its message (arguments
    merged in) and its traceback. Wraps the current record factory; a second call replaces the
    redactor of the first instead of wrapping twice."""
    factory = logging.getLogRecordFactory()
    base = getattr(factory, "nhr_base", factory)

    def make(*args, **kwargs):
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001  a malformed call is logging's to report, not ours
            return record
        record.msg, record.args = redactor(msg), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redactor("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    make.nhr_base = base  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)
