"""The `api` config section and the api preset: validation names the bad key; a missing key stops
the run before any work, naming the variable."""

from __future__ import annotations

import pytest

from nhr_ray.cli import main
from nhr_ray.config import ConfigError, load_config


def test_api_preset_loads_and_overrides_apply():
    cfg = load_config(preset="api", overrides=["api.openai.base_url=http://127.0.0.1:9/v1", "api.gemini.requests_per_minute=120"])
    assert cfg.roles.designer.backend == "openai"
    assert cfg.roles.validator.backend == "gemini" and cfg.roles.inverter.backend == "gemini"
    assert cfg.roles.t2i.backend == "sim" and cfg.roles.editor.backend == "sim"
    assert cfg.api.openai.base_url == "http://127.0.0.1:9/v1" and cfg.api.openai.model == "o3"
    assert cfg.api.gemini.requests_per_minute == 120  # the preset said 600
    assert cfg.api.price("o3").output_per_m == 8.0


@pytest.mark.parametrize(
    "override,where",
    [("api.openai.modle=o3", "api.openai.modle: unknown key"), ("api.gemini.timeout_s=-1", "api.gemini.timeout_s"),
     ("api.max_cost_usd=0", "api.max_cost_usd"), ("roles.validator.options.temprature=0", "roles.validator.options")],
)  # fmt: skip
def test_bad_api_keys_are_named(override, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(preset="api", overrides=[override])


def test_missing_key_fails_before_work(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaPRESENTkey1234567890abcdef")
    assert main(["run", "--preset", "api", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "roles.designer" in err
    assert not (tmp_path / "r" / "data").exists()
