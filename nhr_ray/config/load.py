"""Reading a config: packaged presets, the user's YAML, `--set` overrides, one validation."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nhr_ray.config.base import ConfigError
from nhr_ray.config.renames import upgrade, upgrade_key
from nhr_ray.config.run import RunConfig


def presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("nhr_ray.presets").iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a mapping, got {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    if name not in presets():
        raise ConfigError(f"unknown preset {name!r}; known: {presets()}")
    text = resources.files("nhr_ray.presets").joinpath(f"{name}.yaml").read_text()
    data = upgrade(_read_yaml(text, f"preset {name}"), f"preset {name}")
    base = data.pop("extends", None)
    return deep_merge(preset_dict(base), data) if base else data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """`a.b.c=value`; the value is parsed as a YAML scalar or flow collection."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = upgrade_key(key.strip(), f"--set {key.strip()}").split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def validate_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(upgrade(copy.deepcopy(data), "config"))
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError("invalid config: " + "; ".join(msgs)) from None


def load_config(
    path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None
) -> RunConfig:
    data = preset_dict(preset or "default")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        user = upgrade(_read_yaml(p.read_text(), str(p)), str(p))
        base = user.pop("extends", None)
        if base:
            data = preset_dict(base)
        data = deep_merge(data, user)
    for o in overrides or []:
        apply_override(data, o)
    return validate_config(data)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
