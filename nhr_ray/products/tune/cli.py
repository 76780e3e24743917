"""Arguments of `nhr-ray tune-judge` and the call into local.py or gemini.py (parsing only)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nhr_ray.judges.profiles import profile_names

    p.add_argument("ratings", help="ratings (Parquet/CSV/JSONL): triplet, rater, adherence, aesthetics[, category]")
    p.add_argument("--run", help="the run the ratings were made on: images and instructions are joined from it by id "
                                 "(without it the ratings must carry source_image, edited_image, edit_instruction)")
    p.add_argument("--base", required=True, help="Qwen2.5-VL checkpoint (folder or hub id); with --gemini: the Gemini base model")
    p.add_argument("--out", required=True, help="new folder: the adapter (or the Gemini dataset and job) and its reports")
    p.add_argument("--profile", default="nhr", choices=profile_names(), help="judge profile whose prompt and answer format to train")
    p.add_argument("--prompt-dir", help="folder with the profile's prompt files to train on instead of the packaged ones "
                                        "(mine with the same judging.validation.prompt_dir)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of rated triplets held out for the check (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training order")
    p.add_argument("--threshold", type=float, default=4.7, help="validator threshold of the held-out report (default 4.7)")
    p.add_argument("--epochs", type=int, help="passes over the training set (LoRA default 3; Gemini: Vertex's default)")
    g = p.add_argument_group("LoRA (default)")
    g.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    g.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    g.add_argument("--lora-rank", type=int, default=16, help="adapter rank r (default 16; alpha = 2r)")
    g.add_argument("--batch-size", type=int, default=8, help="questions per optimizer step (gradient accumulation)")
    g.add_argument("--max-pixels", type=int, default=1_003_520, help="image processor's pixel bound per image")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--gradient-checkpointing", action="store_true", help="less GPU memory, slower steps")
    g = p.add_argument_group("Gemini on Vertex AI (--gemini)")
    g.add_argument("--gemini", action="store_true", help="tune a Gemini model with a Vertex AI tuning job instead")
    g.add_argument("--gcs-prefix", help="gs://bucket/path for the dataset and its images (Vertex reads them there)")
    g.add_argument("--project", help="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    g.add_argument("--location", default="us-central1", help="Vertex AI region (default us-central1)")
    g.add_argument("--lr-multiplier", type=float, help="learning-rate multiplier")
    g.add_argument("--adapter-size", type=int, help="adapter size: 1, 2, 4, 8 or 16")
    g.add_argument("--prepare-only", action="store_true", help="write the dataset and print the upload command; no job")
    g.add_argument("--no-upload", action="store_true", help="the dataset is at --gcs-prefix already: only start the job")
    g.add_argument("--poll-s", type=float, default=60.0, help="seconds between job status checks (default 60)")
    g.add_argument("--vertex-base-url", help="Vertex AI API root (default: the SDK's regional endpoint), e.g. a private one")


def run(args) -> int:
    from nhr_ray.products.tables import InputError

    try:
        result = _gemini(args) if args.gemini else _lora(args)
    except InputError as e:
        print(f"nhr-ray tune-judge: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if k != "split"}, indent=2, default=str))
    return 0


def _lora(args) -> dict:
    from nhr_ray.products.tune.local import tune_local
    from nhr_ray.products.tune.lora import TuneSettings

    s = TuneSettings(epochs=args.epochs or 3, steps=args.steps, lr=args.lr, lora_rank=args.lora_rank, batch_size=args.batch_size,
                     max_pixels=args.max_pixels, device=args.device, gradient_checkpointing=args.gradient_checkpointing,
                     seed=args.seed)  # fmt: skip
    return tune_local(args.ratings, args.base, args.out, run_dir=args.run, profile=args.profile, prompt_dir=args.prompt_dir,
                      holdout=args.holdout, threshold=args.threshold, settings=s)  # fmt: skip


def _gemini(args) -> dict:
    import os

    from nhr_ray.products.tables import InputError
    from nhr_ray.products.tune.gemini import GeminiTuneSettings, tune_gemini

    if not args.gcs_prefix:
        raise InputError("--gemini needs --gcs-prefix gs://bucket/path: Vertex AI reads tuning data from Cloud Storage")
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project and not args.prepare_only:
        raise InputError("--gemini needs --project (or GOOGLE_CLOUD_PROJECT) to start a Vertex AI tuning job")
    s = GeminiTuneSettings(base_model=args.base, gcs_prefix=args.gcs_prefix, project=project, location=args.location,
                           epochs=args.epochs, learning_rate_multiplier=args.lr_multiplier, adapter_size=args.adapter_size,
                           poll_s=args.poll_s, upload=not args.no_upload, prepare_only=args.prepare_only,
                           base_url=args.vertex_base_url)  # fmt: skip
    return tune_gemini(args.ratings, args.out, s, run_dir=args.run, profile=args.profile, prompt_dir=args.prompt_dir, holdout=args.holdout,
                       threshold=args.threshold, seed=args.seed, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
