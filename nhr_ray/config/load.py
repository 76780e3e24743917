"""Reading a config: packaged presets, the user's YAML, `--set` overrides, one validation."""

from __future__ import annotations

import copy
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nhr_ray.config.base import ConfigError
from nhr_ray.config.cluster import SIM
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


def preset_layers(name: str) -> list[tuple[str, dict[str, Any]]]:
    """("preset NAME", its own keys) from the root preset down to `name`."""
    if name not in presets():
        raise ConfigError(f"unknown preset {name!r}; known: {presets()}")
    text = resources.files("nhr_ray.presets").joinpath(f"{name}.yaml").read_text()
    data = upgrade(_read_yaml(text, f"preset {name}"), f"preset {name}")
    base = data.pop("extends", None)
    return [*(preset_layers(base) if base else []), (f"preset {name}", data)]


def preset_dict(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, data in preset_layers(name):
        out = deep_merge(out, data)
    return out


def ensemble_judges(data: Any) -> list[dict[str, Any]]:
    """The judges (dicts) of judging.ensemble in unvalidated config data; [] where there are none."""
    judging = data.get("judging") if isinstance(data, dict) else None
    ens = judging.get("ensemble") if isinstance(judging, dict) else None
    judges = ens.get("judges") if isinstance(ens, dict) else None
    return [j for j in judges if isinstance(j, dict)] if isinstance(judges, list) else []


def _unname_default_sim(data: dict[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> None:
    """The default preset's `backend: sim` lines say what a config naming no backend runs; they name
    nothing for a config that names a real backend anywhere: there, a role whose backend only the
    default preset gives is unset, and the config is refused naming it (RunConfig._backends_named)."""
    roles = data.get("roles")
    backends = [v for v in roles.values() if isinstance(v, dict)] if isinstance(roles, dict) else []
    backends += ensemble_judges(data) if isinstance(roles, dict) else []
    if all(v.get("backend") in (None, SIM) for v in backends):  # no real backend named: the simulation, as preset
        return
    named = {r for name, layer in layers if name != "preset default" and isinstance(layer.get("roles"), dict)
             for r, v in layer["roles"].items() if isinstance(v, dict) and "backend" in v}  # fmt: skip
    for r, v in roles.items():
        if r not in named and isinstance(v, dict):
            v.pop("backend", None)


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
    layers = preset_layers(preset or "default")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        user = upgrade(_read_yaml(p.read_text(), str(p)), str(p))
        base = user.pop("extends", None)
        if base:
            layers = preset_layers(base)
        layers.append((str(p), user))
    data: dict[str, Any] = {}
    for _, layer in layers:
        data = deep_merge(data, layer)
    sets: dict[str, Any] = {}
    for o in overrides or []:
        apply_override(data, o)
        with warnings.catch_warnings():  # the same key again, on its own: what the --set layers name
            warnings.simplefilter("ignore")
            apply_override(sets, o)
    _unname_default_sim(data, [*layers, ("--set", sets)])
    return validate_config(data)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
