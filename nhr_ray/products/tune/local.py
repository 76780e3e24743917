"""`nhr-ray tune-judge RATINGS --base CHECKPOINT --out ADAPTER`: a LoRA-tuned Qwen2.5-VL validator.

Writes into ADAPTER: the peft adapter (adapter_config.json, adapter_model.safetensors), the held-out
predictions and `nhr-ray calibrate`'s report on them (calibration.json, scatter.png,
threshold_sweep.png), and tune.json (settings, split, exclusions, loss per step). Use it with
`roles.validator.options.lora: ADAPTER` (transformers or vllm backend, same base model) and the same
`judging.validation.profile`.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

from nhr_ray.judges.profiles import get_profile
from nhr_ray.products.tables import InputError
from nhr_ray.products.tune.data import check_out_dir, load_examples, split
from nhr_ray.products.tune.heldout import heldout_report
from nhr_ray.products.tune.lora import TuneSettings, train
from nhr_ray.roles import BackendContext, build_backend


def check_base(base: str) -> None:
    p = Path(base).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise InputError(f"--base {base}: no config.json there (not a transformers checkpoint folder)")
        return
    if base.startswith((".", "~", "/")) or re.fullmatch(r"[\w.-]+/[\w.-]+", base) is None:
        raise InputError(f"--base {base}: no such folder (and not a hub id 'org/name')")


def tune_local(ratings, base: str, out, *, run_dir=None, profile: str = "nhr", prompt_dir: str | None = None,
               holdout: float = 0.2, threshold: float = 4.7, settings: TuneSettings | None = None) -> dict[str, Any]:  # fmt: skip
    s = settings or TuneSettings()
    prof = get_profile(profile, prompt_dir)
    out = check_out_dir(out)
    check_base(base)
    examples, excluded = load_examples(ratings, run_dir)
    train_set, held = split(examples, holdout, s.seed)  # before any model loads
    out.mkdir(parents=True, exist_ok=True)
    fit = train(base, train_set, prof, out, s)
    gc.collect()
    options = {"model": str(Path(base).expanduser()) if Path(base).expanduser().exists() else base, "lora": str(out.absolute()),
               "device": s.device, "dtype": s.dtype, "max_pixels": s.max_pixels, "max_new_tokens": 64}  # fmt: skip
    judge = build_backend("validator", "transformers", options, BackendContext(role="validator", run_seed=s.seed, num_gpus=0))
    judge.setup()  # the adapter comes back through the same path a mining run loads it
    try:
        held_summary = heldout_report(judge, prof, held, ratings, out, threshold)
    finally:
        judge.teardown()
    result = {"kind": "lora", "base": base, "profile": profile, "prompt_dir": prompt_dir, "adapter": str(out), "settings": s.as_dict(),
              "holdout": holdout, "threshold": threshold,
              "split": {"train": [e.triplet for e in train_set], "heldout": [e.triplet for e in held]},
              "excluded": dict(excluded), "training": fit, "heldout_check": held_summary,
              "use": {"roles.validator.options.model": options["model"], "roles.validator.options.lora": str(out.absolute()),
                      "judging.validation.profile": profile, "judging.validation.prompt_dir": prompt_dir}}  # fmt: skip
    (out / "tune.json").write_text(json.dumps(result, indent=2, default=str))
    return result
