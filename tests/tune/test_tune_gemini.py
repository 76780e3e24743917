"""`nhr-ray tune-judge --gemini`: the real google-genai client and google-auth (a service-account key
whose token endpoint is local) against a local server speaking Vertex AI's tuning and generateContent
wire protocol. Asserts on what the SDK sent; the job walks through its states; the tuned endpoint
becomes a config the gemini validator backend accepts and calls."""

import json

import numpy as np
import pyarrow.fs as pafs
import pytest

from nhr_ray.cli import main
from nhr_ray.config import load_config
from nhr_ray.io.images import encode
from nhr_ray.judges import get_profile
from nhr_ray.products.tune.gemini import GeminiTuneSettings, image_name, tune_gemini
from nhr_ray.products.calibrate import human_scores
from nhr_ray.products.tune.data import load_examples
from nhr_ray.runtime.ratelimit import reset_local
from nhr_ray.testing.fake_vertex import FakeVertex
from tune_helpers import service_account_file, write_ratings

N = 24


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    """24 rated triplets that carry their own images (no --run); rater 'bo' rates every other one, 0.4 high."""
    rng = np.random.default_rng(0)
    rows = []
    for t in range(N):
        src, edt = (encode(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for _ in range(2))
        for rater, bias in (("ann", 0.0), ("bo", 0.4))[: 2 - t % 2]:
            rows.append({"triplet": f"t{t:02d}", "rater": rater, "adherence": 3.0 + (t % 5) / 5 + bias, "aesthetics": 4.0 + bias,
                         "edit_instruction": f"Remove the cup number {t}", "source_image": {"bytes": src, "path": None},
                         "edited_image": {"bytes": edt, "path": None}})  # fmt: skip
    return write_ratings(tmp_path_factory.mktemp("gemini-ratings") / "ratings.parquet", rows)


@pytest.fixture
def vertex(tmp_path, monkeypatch):
    with FakeVertex() as v:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path / "sa.json", v.base_url + "/token")))
        for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT"):
            monkeypatch.delenv(var, raising=False)
        reset_local()
        yield v
        reset_local()


def _cli(ratings, out, vertex, *extra):
    return main(["tune-judge", str(ratings), "--gemini", "--base", "gemini-2.0-flash-001", "--out", str(out),
                 "--gcs-prefix", "gs://nhr-bucket/tune-1", "--project", "proj", "--location", "us-central1",
                 "--vertex-base-url", vertex.base_url, "--poll-s", "0.01", *extra])  # fmt: skip


def test_tuning_job_wire_states_and_the_tuned_validator(ratings, vertex, tmp_path, capsys):
    out = tmp_path / "gem"
    assert _cli(ratings, out, vertex, "--no-upload", "--epochs", "4", "--lr-multiplier", "0.5", "--adapter-size", "4") == 0
    err = capsys.readouterr().err
    [create] = [c for c in vertex.calls if c.method == "POST" and c.path.endswith("/tuningJobs")]
    assert create.path == "/v1/projects/proj/locations/us-central1/tuningJobs"
    assert create.body == {"baseModel": "gemini-2.0-flash-001", "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://nhr-bucket/tune-1/train.jsonl", "validationDatasetUri": "gs://nhr-bucket/tune-1/validation.jsonl",
        "hyperParameters": {"epochCount": 4, "learningRateMultiplier": 0.5, "adapterSize": "ADAPTER_SIZE_FOUR"}}}  # fmt: skip
    # Application Default Credentials: the service account's JWT went to the token endpoint, its token to Vertex
    assert vertex.calls[0].path == "/token" and vertex.calls[0].body["grant_type"].endswith("jwt-bearer")
    assert create.headers["authorization"] == f"Bearer {vertex.tokens_issued[0]}"
    polls = [c for c in vertex.calls if c.method == "GET"]
    assert [c.path for c in polls] == ["/v1/projects/proj/locations/us-central1/tuningJobs/4200"] * 2
    assert "JOB_STATE_PENDING" in err and "JOB_STATE_RUNNING" in err and "JOB_STATE_SUCCEEDED" in err
    result = json.loads((out / "tuned_model.json").read_text())
    endpoint = "projects/proj/locations/us-central1/endpoints/9900"
    assert result["job"] == {"name": "projects/proj/locations/us-central1/tuningJobs/4200", "state": "JOB_STATE_SUCCEEDED",
                             "tuned_model": "projects/proj/locations/us-central1/models/7700", "endpoint": endpoint}  # fmt: skip
    # the endpoint flows into a config the gemini backend accepts ...
    cfg = load_config(out / "validator.yaml", preset="api")
    assert cfg.roles.validator.backend == "gemini" and cfg.roles.validator.options["model"] == endpoint
    assert cfg.api.gemini.vertexai and (cfg.api.gemini.project, cfg.api.gemini.location) == ("proj", "us-central1")
    # ... and was called: the held-out triplets went to the tuned endpoint, images inline, then our prompt
    calls = [c for c in vertex.calls if c.path.endswith(":generateContent")]
    assert len(calls) == round(N * 0.2) and all(c.path == f"/v1/{endpoint}:generateContent" for c in calls)
    parts = calls[0].body["contents"][0]["parts"]
    assert [("inlineData" in p, "text" in p) for p in parts] == [(True, False), (True, False), (False, True)]
    assert result["heldout_check"]["answered"] == len(calls) and (out / "calibration.json").is_file()


def test_dataset_lines_carry_gs_images_prompt_and_the_debiased_target(ratings, vertex, tmp_path):
    out = tmp_path / "gem"
    assert _cli(ratings, out, vertex, "--prepare-only", "--profile", "nhr-paper-keys") == 0
    assert not [c for c in vertex.calls if "tuningJobs" in c.path]  # prepare-only starts nothing
    result = json.loads((out / "tuned_model.json").read_text())
    assert result["upload_command"] == f"gcloud storage cp -r {out / 'dataset'}/* gs://nhr-bucket/tune-1/"
    lines = [json.loads(x) for x in (out / "dataset" / "train.jsonl").read_text().splitlines()]
    held = (out / "dataset" / "validation.jsonl").read_text().splitlines()
    assert len(lines) == N - round(N * 0.2) and len(held) == round(N * 0.2)
    examples = {e.triplet: e for e in load_examples(ratings)[0]}
    human = human_scores(ratings)[0]
    profile = get_profile("nhr-paper-keys")
    for line, t in zip(lines, result["split"]["train"]):
        user, model = line["contents"]
        uris = [p["fileData"]["fileUri"] for p in user["parts"] if "fileData" in p]
        assert uris == [f"gs://nhr-bucket/tune-1/{image_name(examples[t], s)}" for s in ("source", "edited")]
        assert all((out / "dataset" / u.removeprefix("gs://nhr-bucket/tune-1/")).is_file() for u in uris)
        assert f"Remove the cup number {int(t[1:])}" in user["parts"][-1]["text"] and "InstructionAdherence" in user["parts"][-1]["text"]
        got = profile.parse([model["parts"][0]["text"]]).value
        # the target is calibrate's de-biased score (rounded to 2 decimals), not the raters' plain mean
        assert (got["adherence"], got["aesthetics"]) == pytest.approx(human[t], abs=0.0051)
        if int(t[1:]) % 2 == 0:  # also rated by 'bo': b_ann = 4.0 - 4.1, b_bo = 4.4 - 4.2, so 4.15, not the plain mean 4.2
            assert got["aesthetics"] == pytest.approx(4.15)


def test_upload_copies_the_dataset_to_the_gcs_prefix(ratings, vertex, tmp_path):
    fake_gcs = tmp_path / "gcs"  # pyarrow's GCS filesystem stands here as a local subtree (the network boundary)
    fake_gcs.mkdir()
    fs = pafs.SubTreeFileSystem(str(fake_gcs), pafs.LocalFileSystem())
    s = GeminiTuneSettings(base_model="gemini-2.0-flash-001", gcs_prefix="gs://nhr-bucket/tune-2", project="proj",
                           location="us-central1", poll_s=0.01, base_url=vertex.base_url)  # fmt: skip
    result = tune_gemini(ratings, tmp_path / "gem", s, filesystem=fs, evaluate=False, log=lambda m: None)
    stored = sorted(p.relative_to(fake_gcs / "nhr-bucket" / "tune-2").as_posix() for p in fake_gcs.rglob("*") if p.is_file())
    assert result["uploaded_files"] == len(stored) == 2 + 2 * N and "train.jsonl" in stored and "validation.jsonl" in stored
    assert result["job"]["state"] == "JOB_STATE_SUCCEEDED"


def test_a_failed_job_is_an_error_with_the_jobs_own_message(ratings, tmp_path, monkeypatch, capsys):
    with FakeVertex(states=("JOB_STATE_PENDING", "JOB_STATE_FAILED"), fail_message="image gs://x/1.png not found") as v:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path / "sa.json", v.base_url + "/token")))
        rc = _cli(ratings, tmp_path / "gem", v, "--no-upload")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.endswith("ended JOB_STATE_FAILED: image gs://x/1.png not found")


@pytest.mark.parametrize("args, want", [
    (["--gcs-prefix", "/local/dir"], "--gcs-prefix must be a gs://bucket[/path] URI"),
    (["--adapter-size", "3"], "--adapter-size 3: Vertex supports [1, 2, 4, 8, 16]"),
    (["--holdout", "0.5"], "12 training examples: Vertex AI tuning needs at least 16"),
])  # fmt: skip
def test_unusable_gemini_settings_are_refused_before_any_job(ratings, vertex, tmp_path, capsys, args, want):
    assert _cli(ratings, tmp_path / "gem", vertex, "--no-upload", *args) == 2
    assert want in capsys.readouterr().err and not [c for c in vertex.calls if "tuningJobs" in c.path]
