"""Old spellings of config keys, accepted for one release with a warning that names the new one.

Each entry maps a dotted path that drifted from the stage it configures to the stage's name. A layer
(a preset, a config file, one `--set`) that uses the old spelling is upgraded before it is merged;
a layer that spells both is an error that names both.
"""

from __future__ import annotations

import warnings
from typing import Any

from nhr_ray.config.base import ConfigError

# old dotted path -> new dotted path (removed in the release after 0.2)
RENAMED: dict[str, str] = {
    "judging.validator": "judging.validation",  # the stage is `validation` (its role is `validator`)
}


class ConfigDeprecationWarning(FutureWarning):
    """A config key spelled the old way (FutureWarning: shown to users by default)."""


def _warn(old: str, new: str, where: str) -> None:
    warnings.warn(
        f"{where}: config key '{old}' is deprecated, spell it '{new}' (the old spelling stops working in the next release)",
        ConfigDeprecationWarning, stacklevel=4,
    )  # fmt: skip


def upgrade(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Move every old-spelled key of one layer to its new place (in place; returns `data`)."""
    for old, new in RENAMED.items():
        *parent_path, old_key = old.split(".")
        *new_parent, new_key = new.split(".")
        parent = data
        for p in parent_path:
            parent = parent.get(p) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or old_key not in parent:
            continue
        assert new_parent == parent_path, "renames stay within their section"
        if new_key in parent:
            raise ConfigError(f"{where}: both '{old}' (deprecated) and '{new}' are set; keep only '{new}'")
        _warn(old, new, where)
        parent[new_key] = parent.pop(old_key)
    return data


def upgrade_key(key: str, where: str) -> str:
    """The new spelling of a dotted `--set` key (warning once if it used an old one)."""
    for old, new in RENAMED.items():
        if key == old or key.startswith(old + "."):
            _warn(old, new, where)
            return new + key[len(old):]
    return key


def fingerprint_spelling(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config (dotted keys) with renamed keys under their old spelling: a run's fingerprint and
    its scheduler checkpoint's config hash stay what they were for runs started before the rename,
    so those runs resume (for as long as the old spelling is accepted)."""
    out = {}
    for key, value in flat.items():
        for old, new in RENAMED.items():
            if key == new or key.startswith(new + "."):
                key = old + key[len(new):]
                break
        out[key] = value
    return out
