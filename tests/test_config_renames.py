"""Old spellings of config keys: read for one release, with one warning naming old and new; both
spellings in one layer are an error naming both."""

from __future__ import annotations

import warnings

import pytest

from nhr_ray.config import ConfigDeprecationWarning, ConfigError, load_config, validate_config


def _load(**kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(**kw)
    return cfg, [w for w in caught if issubclass(w.category, ConfigDeprecationWarning)]


def test_old_spelling_in_a_file_loads_warns_once_and_gives_the_same_config(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("judging:\n  validator: {profile: nhr-paper-keys}\n")
    new.write_text("judging:\n  validation: {profile: nhr-paper-keys}\n")
    cfg_old, warned = _load(path=old)
    cfg_new, none = _load(path=new)
    assert len(warned) == 1 and not none
    msg = str(warned[0].message)
    assert "'judging.validator'" in msg and "'judging.validation'" in msg and str(old) in msg
    assert cfg_old == cfg_new and cfg_old.judging.validation.profile == "nhr-paper-keys"


def test_old_spelling_in_a_set_override_and_in_a_dict():
    cfg, warned = _load(path=None, overrides=["judging.validator.profile=nhr-paper-keys"])
    assert len(warned) == 1 and "--set judging.validator.profile" in str(warned[0].message)
    assert cfg.judging.validation.profile == "nhr-paper-keys"
    with pytest.warns(ConfigDeprecationWarning, match="judging.validation"):
        assert validate_config({"judging": {"validator": {"profile": "nhr-paper-keys"}}}).judging == cfg.judging


def test_both_spellings_at_once_is_an_error_naming_both(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("judging:\n  validator: {profile: nhr}\n  validation: {profile: nhr-paper-keys}\n")
    with pytest.raises(ConfigError, match=r"both 'judging.validator' \(deprecated\) and 'judging.validation'"):
        load_config(both)
    with pytest.raises(ConfigError, match="both 'judging.validator'"):
        validate_config({"judging": {"validator": {}, "validation": {}}})


def test_a_file_in_the_old_spelling_and_a_set_in_the_new_one_do_not_clash(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("judging:\n  validator: {profile: nhr-paper-keys, prompt_dir: /p}\n")
    cfg, warned = _load(path=old, overrides=["judging.validation.profile=nhr"])
    assert len(warned) == 1
    assert cfg.judging.validation.profile == "nhr" and cfg.judging.validation.prompt_dir == "/p"


def test_a_run_started_before_a_rename_keeps_its_fingerprint():
    """Fingerprints and the scheduler's config hash spell renamed keys the old way, so a run started
    before the rename resumes (checked against main's code once: same hash for the default and api
    presets)."""
    import hashlib
    import json

    from nhr_ray.resumable import config_hash, flat, flat_config, resumable

    cfg = load_config(None, overrides=["judging.validation.profile=nhr-paper-keys"])
    fp = flat_config(cfg)
    assert fp["judging.validator.profile"] == "nhr-paper-keys" and not any(k.startswith("judging.validation") for k in fp)
    # the hash as it was computed before the rename: the dump's keys, `validator` under `judging`
    dump = cfg.model_dump(mode="json")
    dump["judging"] = {("validator" if k == "validation" else k): v for k, v in dump["judging"].items()}
    fixed = {k: v for k, v in flat(dump).items() if not resumable(k)}
    assert config_hash(cfg) == hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]
