"""Moved to nhr_ray/redact.py (one redactor for every backend, stage and log); this name stays so
imports written before the move keep working."""

from nhr_ray.redact import KEY_ENV_VARS, MASK, redact, secret_values  # noqa: F401
