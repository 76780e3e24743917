"""`nhr-ray tune-judge RATINGS --gemini --base gemini-2.0-flash-001 --gcs-prefix gs://B/P --out DIR`:
the paper's own way to a tuned validator, a Vertex AI supervised tuning job on a Gemini model.

1. The dataset: one JSONL line per question of the judge profile per rated triplet, as Vertex's
   supervised-tuning format wants it: a user turn with the scoring prompt and the images in the
   profile's order, the images as `fileData` (gs:// URIs under --gcs-prefix: Vertex reads images of a
   tuning dataset only from Cloud Storage), and a model turn with the de-biased human scores in the
   profile's answer format. The held-out triplets become the job's validation set (at most 256
   lines, the smallest limit Vertex documents). Written under DIR/dataset/ first.
2. Upload of DIR/dataset/ to --gcs-prefix through pyarrow's GCS filesystem (Application Default
   Credentials), or, with --no-upload, nothing: the files are expected there already (e.g. after
   `gcloud storage cp -r DIR/dataset/* gs://B/P/`). --prepare-only stops after step 1 and prints
   that command.
3. The job: `client.tunings.tune(...)` (google-genai, vertexai=True: POST
   /v1/projects/{project}/locations/{location}/tuningJobs), then `client.tunings.get` every
   --poll-s until the job ends. A succeeded job gives a tuned model endpoint
   (projects/.../endpoints/...), which the gemini validator backend takes as its model: DIR holds
   tuned_model.json and validator.yaml (a config fragment: `nhr-ray run DIR/validator.yaml --preset
   api ...`). A failed, cancelled or expired job is an error carrying the job's own message.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nhr_ray.io.images import encode
from nhr_ray.judges.profiles import JudgeProfile
from nhr_ray.products.tables import InputError
from nhr_ray.products.tune.data import Example
from nhr_ray.records import stable_hash

MIN_TRAIN_LINES = 16  # Vertex refuses smaller training sets
MAX_VALIDATION_LINES = 256
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR", 8: "ADAPTER_SIZE_EIGHT",
                 16: "ADAPTER_SIZE_SIXTEEN"}  # fmt: skip
DONE = {"JOB_STATE_SUCCEEDED"}
FAILED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


@dataclass
class GeminiTuneSettings:
    base_model: str
    gcs_prefix: str
    project: str | None = None
    location: str | None = None
    epochs: int | None = None  # None: Vertex's default
    learning_rate_multiplier: float | None = None
    adapter_size: int | None = None
    display_name: str | None = None
    poll_s: float = 60.0
    timeout_s: float = 24 * 3600.0
    upload: bool = True
    prepare_only: bool = False
    base_url: str | None = None  # API root override (a regional or private endpoint; tests)

    def check(self) -> None:
        if not self.gcs_prefix.startswith("gs://") or len(self.gcs_prefix.rstrip("/")) <= 5:
            raise InputError(f"--gcs-prefix must be a gs://bucket[/path] URI (Vertex reads tuning data from Cloud Storage), "
                             f"not {self.gcs_prefix!r}")  # fmt: skip
        if self.adapter_size is not None and self.adapter_size not in ADAPTER_SIZES:
            raise InputError(f"--adapter-size {self.adapter_size}: Vertex supports {sorted(ADAPTER_SIZES)}")


def image_name(ex: Example, side: str) -> str:
    return f"images/{stable_hash('tune', ex.triplet, bits=64):016x}_{side}.png"


def dataset_lines(examples: list[Example], profile: JudgeProfile, prefix: str) -> list[dict]:
    lines = []
    for ex in examples:
        before, after = ex.images()
        uri = {id(before): f"{prefix}/{image_name(ex, 'source')}", id(after): f"{prefix}/{image_name(ex, 'edited')}"}
        for req, target in zip(profile.requests(ex.triplet, ex.instruction, before, after), profile.answers(ex.adherence, ex.aesthetics)):
            parts = [{"fileData": {"mimeType": "image/png", "fileUri": uri[id(req.images[x])]}} if isinstance(x, int)
                     else {"text": x} for x in req.content()]  # fmt: skip
            lines.append({"contents": [{"role": "user", "parts": parts}, {"role": "model", "parts": [{"text": target}]}]})
    return lines


def write_dataset(train: list[Example], held: list[Example], profile: JudgeProfile, local: Path, prefix: str) -> dict[str, Any]:
    prefix = prefix.rstrip("/")
    (local / "images").mkdir(parents=True, exist_ok=True)
    for ex in train + held:
        for side, img in zip(("source", "edited"), ex.images()):
            (local / image_name(ex, side)).write_bytes(encode(img, "png"))
    train_lines = dataset_lines(train, profile, prefix)
    val_lines = dataset_lines(held, profile, prefix)[:MAX_VALIDATION_LINES]
    if len(train_lines) < MIN_TRAIN_LINES:
        raise InputError(f"{len(train_lines)} training examples: Vertex AI tuning needs at least {MIN_TRAIN_LINES} "
                         "(rate more triplets, or lower --holdout)")  # fmt: skip
    for name, lines in (("train.jsonl", train_lines), ("validation.jsonl", val_lines)):
        (local / name).write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return {"train_uri": f"{prefix}/train.jsonl", "validation_uri": f"{prefix}/validation.jsonl",
            "train_lines": len(train_lines), "validation_lines": len(val_lines), "local": str(local)}  # fmt: skip


def upload(local: Path, prefix: str, filesystem=None) -> int:
    """Copy the dataset folder to the gs:// prefix (pyarrow.fs; `filesystem` stands in for GCS in tests)."""
    from nhr_ray.io.store import Store

    store = Store(prefix.rstrip("/"), filesystem=filesystem)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    for p in files:
        store.write_bytes(p.relative_to(local).as_posix(), p.read_bytes())
    return len(files)


def make_client(s: GeminiTuneSettings):
    from google import genai
    from google.genai import types

    http = types.HttpOptions(base_url=s.base_url, api_version="v1") if s.base_url else types.HttpOptions(api_version="v1")
    return genai.Client(vertexai=True, project=s.project, location=s.location, http_options=http)


def run_job(client, s: GeminiTuneSettings, data: dict[str, Any], log: Callable[[str], None]) -> Any:
    """Start the tuning job and poll it to its end; -> the finished TuningJob."""
    from google.genai import types

    cfg = types.CreateTuningJobConfig(
        epoch_count=s.epochs, learning_rate_multiplier=s.learning_rate_multiplier,
        adapter_size=ADAPTER_SIZES.get(s.adapter_size) if s.adapter_size else None,
        tuned_model_display_name=s.display_name,
        validation_dataset=types.TuningValidationDataset(gcs_uri=data["validation_uri"]) if data["validation_lines"] else None,
    )  # fmt: skip
    with warnings.catch_warnings():  # the SDK marks its tuning API experimental on every call
        warnings.simplefilter("ignore")
        job = client.tunings.tune(base_model=s.base_model, training_dataset=types.TuningDataset(gcs_uri=data["train_uri"]), config=cfg)
    log(f"tuning job {job.name} started ({_state(job)})")
    t0, last = time.monotonic(), _state(job)
    while _state(job) not in DONE | FAILED:
        if time.monotonic() - t0 > s.timeout_s:
            raise InputError(f"tuning job {job.name} still {_state(job)} after {s.timeout_s:.0f} s; it keeps running on "
                             "Vertex AI: check it there")  # fmt: skip
        time.sleep(s.poll_s)
        job = client.tunings.get(name=job.name)
        if _state(job) != last:
            last = _state(job)
            log(f"tuning job {job.name}: {last}")
    if _state(job) in FAILED:
        err = getattr(job, "error", None)
        raise InputError(f"tuning job {job.name} ended {_state(job)}: {getattr(err, 'message', None) or err or 'no message'}")
    return job


def _state(job) -> str:
    st = getattr(job, "state", None)
    return getattr(st, "value", None) or str(st)


def validator_config(endpoint: str, s: GeminiTuneSettings, profile: str, prompt_dir: str | None = None) -> dict[str, Any]:
    """The config fragment that makes the tuned model the run's validator."""
    gemini: dict[str, Any] = {"vertexai": True, "project": s.project, "location": s.location}
    if s.base_url:
        gemini["base_url"] = s.base_url
    judging = {"profile": profile, **({"prompt_dir": prompt_dir} if prompt_dir else {})}
    return {"api": {"gemini": gemini}, "judging": {"validation": judging},
            "roles": {"validator": {"backend": "gemini", "options": {"model": endpoint}}}}  # fmt: skip


def tune_gemini(ratings, out, s: GeminiTuneSettings, *, run_dir=None, profile: str = "nhr", prompt_dir: str | None = None,
                holdout: float = 0.2, threshold: float = 4.7, seed: int = 0, evaluate: bool = True, filesystem=None,
                log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Dataset, upload, job, and (with `evaluate`) the held-out check through the gemini backend."""
    import yaml

    from nhr_ray.config import deep_merge, preset_dict, validate_config
    from nhr_ray.judges.profiles import get_profile
    from nhr_ray.products.tune.data import check_out_dir, load_examples, split
    from nhr_ray.products.tune.heldout import heldout_report

    s.check()
    prof = get_profile(profile, prompt_dir)
    out = check_out_dir(out)
    examples, excluded = load_examples(ratings, run_dir)
    train, held = split(examples, holdout, seed)
    data = write_dataset(train, held, prof, out / "dataset", s.gcs_prefix)
    result: dict[str, Any] = {"kind": "gemini", "base": s.base_model, "profile": profile, "holdout": holdout, "seed": seed,
                              "dataset": data, "excluded": dict(excluded),
                              "split": {"train": [e.triplet for e in train], "heldout": [e.triplet for e in held]}}  # fmt: skip
    if s.prepare_only:
        result["upload_command"] = f"gcloud storage cp -r {out / 'dataset'}/* {s.gcs_prefix.rstrip('/')}/"
        log(f"dataset written to {out / 'dataset'}; upload it with:\n  {result['upload_command']}\nthen run the same "
            "command with --no-upload instead of --prepare-only")  # fmt: skip
    else:
        if s.upload:
            result["uploaded_files"] = upload(out / "dataset", s.gcs_prefix, filesystem)
        job = run_job(make_client(s), s, data, log)
        endpoint = job.tuned_model.endpoint
        result["job"] = {"name": job.name, "state": _state(job), "tuned_model": job.tuned_model.model, "endpoint": endpoint}
        fragment = validator_config(endpoint, s, profile, prompt_dir)
        (out / "validator.yaml").write_text(yaml.safe_dump(fragment, sort_keys=False))
        if evaluate:
            # the fragment as `nhr-ray run validator.yaml --preset api` reads it (every role named there)
            judge = _gemini_judge(validate_config(deep_merge(preset_dict("api"), fragment)), seed)
            try:
                result["heldout_check"] = heldout_report(judge, prof, held, ratings, out, threshold)
            finally:
                judge.teardown()
    (out / "tuned_model.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _gemini_judge(cfg, seed: int):
    from nhr_ray.roles import BackendContext, build_backend

    rc = cfg.role("validator")
    judge = build_backend("validator", "gemini", rc.options, BackendContext(role="validator", run_seed=seed, num_gpus=0, run_config=cfg))
    judge.setup()
    return judge
