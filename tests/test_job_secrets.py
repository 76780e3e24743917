"""API keys reach a job from a secrets file on the node, never through the job's metadata.

`ray job submit --runtime-env-json '{"env_vars": {...}}'` stores the values in the job table for the
cluster's life and hands them raw to any CLI or SDK client (Ray redacts them for browsers only). The
README's way instead: the keys sit in a mode-600 `KEY=value` file on every node and the node's
environment names it (NHR_SECRETS_FILE; the launcher configs copy the file and set the variable).
Here a real head (`ray start --head`, token authentication on) is started with that variable, the
api preset is submitted exactly as the README shows (nothing about keys on the command line), and:
the job could read both keys (the local OpenAI and Gemini servers received them), while the job's
info, the job list (SDK, HTTP and `ray job list`), and every process's command line and
environment on this machine during the run hold neither. After the run the run's spend ledger
actor (`ratelimit:usd:<job>`) is gone from the long-lived cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from nhr_ray.backends.api.common import api_key
from nhr_ray.backends.api.redact import redact
from nhr_ray.roles import BackendUnavailable
from nhr_ray.secretfile import SecretFileError, read_secrets, secret
from nhr_ray.testing.fake_api import FakeAPIServer, sim_world_answer
from nhr_ray.testing.local_head import LocalHead, ray_bin

OPENAI_KEY = "sk-jobsecret-0penAIKEY1234567890"
GEMINI_KEY = "AIzaJOBsecretGEMINIkey1234567890xyz"
KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "NHR_SECRETS_FILE")


def secrets_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def scan_processes(needles: list[bytes]) -> list[str]:
    """Processes whose command line or environment holds any of `needles` (those we may read)."""
    hits = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(f"{pid}/{part}")
    return hits


@pytest.mark.timeout(420)
def test_keys_reach_the_job_from_the_nodes_secrets_file_and_never_its_metadata(tmp_path, monkeypatch):
    for k in KEY_VARS:  # the submitter has no key at all, and the node only the file
        monkeypatch.delenv(k, raising=False)
    keys = secrets_file(tmp_path / "api-keys.env", f"OPENAI_API_KEY={OPENAI_KEY}\nGEMINI_API_KEY={GEMINI_KEY}\n")
    needles = [OPENAI_KEY.encode(), GEMINI_KEY.encode()]
    out, sid = tmp_path / "run", f"nhr-secrets-{uuid.uuid4().hex[:8]}"
    with FakeAPIServer("openai", responder=sim_world_answer) as oa, FakeAPIServer("gemini", responder=sim_world_answer) as gm:
        sets = [f"api.openai.base_url={oa.base_url}", f"api.gemini.base_url={gm.base_url}", "task.num_scenes=6",
                "task.items_per_request=3", "sources.seeds_per_prompt=2", "roles.validator.actors=1",
                "roles.editor.actors=1", "output.progress=false", "scheduler.budget_gpu_hours=0.15"]  # fmt: skip
        entry = [sys.executable, "-m", "nhr_ray", "run", "--preset", "api", "--out", str(out)]
        entry += [a for s in sets for a in ("--set", s)]
        with LocalHead(num_cpus=4, num_gpus=8, env={"NHR_SECRETS_FILE": str(keys)}) as head:
            r = head.submit(entry, working_dir=None, extra_args=["--submission-id", sid, "--no-wait"], timeout_s=120)
            assert r.returncode == 0, (r.stderr[-2000:], head.log_tail())
            leaks, status, deadline = [], "PENDING", time.monotonic() + 300
            while status in ("PENDING", "RUNNING") and time.monotonic() < deadline:
                leaks += scan_processes(needles)  # while the job's driver and actors are alive
                time.sleep(1.0)
                status = head.job_status(sid)
            logs = head.get_json(f"/api/jobs/{sid}/logs")["logs"]
            info_http, list_http = head.get_json(f"/api/jobs/{sid}"), head.get_json("/api/jobs/")
            from ray.job_submission import JobSubmissionClient

            client = JobSubmissionClient(head.dashboard_url, headers=head.auth_headers())
            info_sdk, list_sdk = client.get_job_info(sid), client.list_jobs()
            cli = subprocess.run([ray_bin(), "job", "list", "--address", head.dashboard_url], env=head._env(),
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
            actors = head.get_json("/api/v0/actors?detail=1&limit=10000")["data"]["result"]["result"]
            try:  # the job API itself: nothing without the head's token
                urllib.request.urlopen(f"{head.dashboard_url}/api/jobs/{sid}", timeout=10)
                anonymous = 200
            except urllib.error.HTTPError as e:
                anonymous = e.code
    assert anonymous == 401
    assert status == "SUCCEEDED", (status, logs[-3000:])
    # the job read both keys: each server got its key, in the header the SDK sends it in
    assert oa.records and all(rec.headers["authorization"] == f"Bearer {OPENAI_KEY}" for rec in oa.records)
    assert gm.records and all(rec.headers["x-goog-api-key"] == GEMINI_KEY for rec in gm.records)
    # and no one who can read the job, or this machine's process table, sees them
    assert sid in cli.stdout, cli.stderr[-2000:]
    for what, text in [("job info (HTTP)", json.dumps(info_http)), ("job list (HTTP)", json.dumps(list_http)),
                       ("job info (SDK)", repr(info_sdk)), ("job list (SDK)", repr(list_sdk)),
                       ("ray job list", cli.stdout + cli.stderr), ("job log", logs)]:  # fmt: skip
        assert OPENAI_KEY not in text and GEMINI_KEY not in text, what
    assert not leaks, leaks
    # the run's spend ledger (api.max_cost_usd of the preset) existed and ended with the run;
    # the provider's rate buckets are the cluster's, shared by runs, and stay
    ledgers = [(a["name"], a["state"]) for a in actors if a.get("name", "").startswith("ratelimit:usd:")]
    assert ledgers and all(state == "DEAD" for _, state in ledgers), ledgers
    assert any(a.get("name", "").startswith("ratelimit:gemini:") and a["state"] == "ALIVE" for a in actors)


def test_a_secrets_file_others_can_read_is_refused_with_the_fix(tmp_path, monkeypatch):
    for k in KEY_VARS:
        monkeypatch.delenv(k, raising=False)
    f = secrets_file(tmp_path / "keys.env", f"OPENAI_API_KEY={OPENAI_KEY}\n", 0o640)
    monkeypatch.setenv("NHR_SECRETS_FILE", str(f))
    with pytest.raises(BackendUnavailable, match=r"readable or writable by other users \(mode 640\); .*chmod 600") as e:
        api_key(("OPENAI_API_KEY",))
    assert OPENAI_KEY not in str(e.value)
    f.chmod(0o600)
    assert api_key(("OPENAI_API_KEY",)) == OPENAI_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123456")  # the environment comes first
    assert secret("OPENAI_API_KEY") == "sk-from-the-environment-123456"
    monkeypatch.setenv("NHR_SECRETS_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(BackendUnavailable, match="missing.env cannot be read"):
        api_key(("GEMINI_API_KEY",))


def test_secrets_file_format_and_errors_that_never_quote_a_value(tmp_path, monkeypatch):
    f = secrets_file(tmp_path / "keys.env", "# keys\n\nexport OPENAI_API_KEY='sk-quoted-123456'\nGEMINI_API_KEY = AIzaplain\n")
    assert read_secrets(f) == {"OPENAI_API_KEY": "sk-quoted-123456", "GEMINI_API_KEY": "AIzaplain"}
    f.chmod(0o600)
    secrets_file(f, "OPENAI_API_KEY=sk-ok-123456\nsk-a-stray-secret-line-9876\n")
    with pytest.raises(SecretFileError, match=r"line 2: expected KEY=value") as e:
        read_secrets(f)
    assert "stray" not in str(e.value)
    # a key that only the file holds is still scrubbed from any text that leaves a backend
    secrets_file(f, "GEMINI_API_KEY=opaque-gemini-value-42\n")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("NHR_SECRETS_FILE", str(f))
    assert redact("401: bad key opaque-gemini-value-42") == "401: bad key [REDACTED]"
