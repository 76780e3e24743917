"""No key reaches a run's outputs: an openai_server judge whose endpoint echoes the key in a 401 body
(as hosted APIs do: "Incorrect API key provided: ...") mines a run through the real stages; the key
is in no Parquet column, report, KTO export, funnel, manifest or log record. The key has no key-like
shape, so only the configured variable (`api_key_env`) lets the redactor find it."""

import glob
import json
import logging
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import sim_except, small_config
from nhr_ray.products.export import export
from nhr_ray.products.report import write_report
from nhr_ray.redact import MASK, Redactor, install_log_redaction, key_env_names
from nhr_ray.runtime.pipeline import run
from nhr_ray.stages.base import error_verdict
from nhr_ray.testing.fake_api import FakeAPIServer

KEY = "nhrjudgetoken0123456789plainvalue"
KEY_ENV = "NHR_TEST_JUDGE_TOKEN"


@pytest.fixture
def echo_server():
    """The project's fake OpenAI server: every other request a 401 whose message echoes the bearer
    token (fault 'auth_echo'), the rest passing scores."""
    with FakeAPIServer("openai", faults=lambda rec: "auth_echo" if rec.seq % 2 == 0 else None) as srv:
        yield srv


def _texts(path: Path) -> str:
    """Everything a file holds, as text: Parquet files read back row by row (compressed pages would
    hide a substring from a byte search), other files as bytes."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=repr)
    return path.read_bytes().decode("utf-8", "replace")


def test_key_echoed_in_401_reaches_no_output(echo_server, tmp_path, monkeypatch, caplog, capfd):
    import ray

    if ray.is_initialized():  # the run starts its own cluster, whose workers inherit the key variable
        ray.shutdown()
    monkeypatch.setenv(KEY_ENV, KEY)
    opts = f'{{base_url: "{echo_server.base_url}", model: judge, api_key_env: {KEY_ENV}, max_retries: 0, concurrency: 2}}'
    cfg = small_config(**{**sim_except("validator"), "roles.validator.backend": "openai_server", "roles.validator.options": opts,
                          "task.num_scenes": 4, "sources.seeds_per_prompt": 2})  # fmt: skip
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "run"
    run(cfg, out)
    write_report(out)
    export(out, "kto", tmp_path / "kto")

    files = [p for p in [*out.rglob("*"), *(tmp_path / "kto").rglob("*")] if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.suffix == ".parquet" for p in files)
    leaked = [str(p.relative_to(tmp_path)) for p in files if KEY in _texts(p)]
    assert leaked == []
    auth = {r.headers.get("authorization") for r in echo_server.records}
    assert auth == {f"Bearer {KEY}"} and len(echo_server.records) >= 4  # the key was sent, and echoed back
    att = pq.read_table(glob.glob(str(out / "data" / "attempts-*.parquet"))).to_pylist()
    failed = [a for a in att if (a["validation_reason"] or "").startswith("error:AuthenticationError")]
    assert failed and all(MASK in a["validation_raw"] and "Incorrect API key provided" in a["validation_raw"] for a in failed)
    kto = pq.read_table(glob.glob(str(tmp_path / "kto" / "data" / "*.parquet"))).to_pylist()
    assert kto  # the answered half was judged and exported
    assert not [r for r in caplog.records if KEY in r.getMessage() or KEY in (r.exc_text or "")]
    seen = capfd.readouterr()
    assert KEY not in seen.out and KEY not in seen.err


def test_configured_variables_join_the_well_known_ones(monkeypatch):
    cfg = small_config(**{**sim_except("validator"), "roles.validator.backend": "openai_server", "roles.validator.options": f"{{api_key_env: {KEY_ENV}}}"})
    assert KEY_ENV in key_env_names(cfg) and "OPENAI_API_KEY" in key_env_names(cfg)
    monkeypatch.setenv(KEY_ENV, KEY)
    r = Redactor(cfg)
    assert r(f"401: bad key {KEY}!") == f"401: bad key {MASK}!"
    assert r.value({"a": [f"x{KEY}"], "n": 3}) == {"a": [f"x{MASK}"], "n": 3}
    assert Redactor()(f"bad key {KEY}") == f"bad key {KEY}"  # not configured, no key shape: why the config matters
    # ordinary words that contain a key prefix stay as they are
    assert r("a task-force of painters, a desk-lamp-shaped kiosk-stand") == "a task-force of painters, a desk-lamp-shaped kiosk-stand"


def test_error_verdict_redacts_its_error_and_raw(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    v = error_verdict("validation", f"AuthenticationError: Incorrect API key provided: {KEY}")
    assert KEY not in v.raw and KEY not in v.reason and v.failed and v.reason == "error:AuthenticationError"


def test_log_records_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    cfg = small_config(**{**sim_except("validator"), "roles.validator.backend": "openai_server", "roles.validator.options": f"{{api_key_env: {KEY_ENV}}}"})
    factory = logging.getLogRecordFactory()
    try:
        install_log_redaction(Redactor(cfg))
        install_log_redaction(Redactor(cfg))  # idempotent: wraps the original factory once
        caplog.set_level(logging.INFO)
        log = logging.getLogger("nhr_ray.some.module")
        log.warning("call failed: %s", f"401 key={KEY}")
        try:
            raise RuntimeError(f"server said {KEY}")
        except RuntimeError:
            log.exception("while judging")
        assert len(caplog.records) == 2
        for rec in caplog.records:
            assert KEY not in rec.getMessage() and MASK in (rec.getMessage() + (rec.exc_text or ""))
        assert KEY not in caplog.text
    finally:
        logging.setLogRecordFactory(factory)
    assert os.environ[KEY_ENV] == KEY
