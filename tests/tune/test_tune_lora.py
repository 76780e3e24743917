"""`nhr-ray tune-judge` with LoRA, for real on CPU: ratings of a simulated run, a tiny random Qwen2.5-VL
judge, a few steps of peft training, the adapter loaded back through the transformers backend
(options.lora), and a mining run whose validator is the tuned judge."""

import glob
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import sim_except, small_config
from nhr_ray.cli import main
from nhr_ray.judges import get_profile
from nhr_ray.products.tune.data import load_examples
from nhr_ray.roles import BackendContext, build_backend
from tune_helpers import learnable_judge, short_prompt_dir, write_ratings

RUN_SETS = {"task.num_scenes": 4, "task.items_per_request": 4, "sources.seeds_per_prompt": 2}


@pytest.fixture(scope="module")
def one_thread():
    """Two shared cores and torch's thread pool spinning against other processes make each tiny
    op ~20x slower; one thread is what a CPU test wants."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def rated_run(ray_local, tmp_path_factory):
    """A simulated run, 16 of its items rated 4.9 / 4.8 by three raters, plus one bad row of each kind."""
    from nhr_ray.runtime.pipeline import run

    root = tmp_path_factory.mktemp("rated")
    run(small_config(**RUN_SETS), root / "run")
    data = root / "run" / "data"
    ids = [r["sample_id"] for f in sorted(glob.glob(f"{data}/triplets-*.parquet")) for r in pq.read_table(f, columns=["sample_id"]).to_pylist()]
    ids += [r["attempt_id"] for f in sorted(glob.glob(f"{data}/attempts-*.parquet"))
            for r in pq.read_table(f, columns=["attempt_id", "edited_image"]).to_pylist() if r["edited_image"]]  # fmt: skip
    ids = ids[:16]
    assert len(ids) == 16
    rows = [{"triplet": t, "rater": r, "adherence": 4.9, "aesthetics": 4.8} for t in ids for r in ("ann", "bo", "cy")]
    rows += [{"triplet": ids[0], "rater": "dee", "adherence": 6.0, "aesthetics": 4.0},  # outside 1-5
             {"triplet": ids[1], "rater": "dee", "adherence": float("nan"), "aesthetics": 4.0},  # not a number
             {"triplet": "no-such-item", "rater": "ann", "adherence": 4.0, "aesthetics": 4.0}]  # not in the run  # fmt: skip
    return {"run": root / "run", "ratings": write_ratings(root / "ratings.parquet", rows), "ids": ids, "root": root}


@pytest.fixture(scope="module")
def tuned(rated_run, tiny_models, one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("tuned")
    judge = learnable_judge(tiny_models["vlm"], root / "judge-tiny")
    prompts = short_prompt_dir(root)
    out = root / "adapter"
    rc = main(["tune-judge", str(rated_run["ratings"]), "--run", str(rated_run["run"]), "--base", str(judge), "--out", str(out),
               "--prompt-dir", str(prompts), "--holdout", "0.25", "--seed", "0", "--steps", "160", "--lr", "2e-2",
               "--batch-size", "2", "--lora-rank", "16", "--max-pixels", "4096", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    return {"out": out, "judge": judge, "prompts": prompts, "report": json.loads((out / "tune.json").read_text())}


def test_tuning_lowers_the_loss_saves_the_adapter_and_checks_the_held_out_split(tuned, rated_run):
    out, rep = tuned["out"], tuned["report"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and "language_model" in cfg["target_modules"]  # the LLM's layers, not the vision tower
    loss = rep["training"]["loss"]
    assert len(loss) == 160 and np.mean(loss[-5:]) < 0.1 * np.mean(loss[:5])
    # bad ratings were counted where they were read; the split is by triplet, seeded, disjoint
    assert rep["excluded"] == {"ratings_out_of_range": 1, "ratings_non_numeric": 1, "ratings_unknown_triplet": 1}
    train, held = rep["split"]["train"], rep["split"]["heldout"]
    assert len(held) == 4 and not set(train) & set(held) and sorted(train + held) == sorted(rated_run["ids"])
    # held-out predictions through the reloaded adapter, and calibrate's report on them
    check = rep["heldout_check"]
    preds = pq.read_table(out / "heldout_predictions.parquet").to_pylist()
    assert check["n"] == 4 and sorted(p["triplet"] for p in preds) == sorted(held)
    answered = [p for p in preds if p["outcome"] == "ok"]
    assert check["answered"] == len(answered) >= 1  # a 175k-parameter judge after 160 steps: not every time
    assert all((p["adherence"], p["aesthetics"]) == (4.9, 4.8) for p in answered)
    report = json.loads((out / "calibration.json").read_text())
    assert report["n_triplets"] == len(answered) and report["axes"]["adherence"]["mae"] == pytest.approx(0.0)
    assert (out / "scatter.png").is_file() and (out / "threshold_sweep.png").is_file()


def test_the_adapter_loads_through_the_transformers_backend_and_changes_its_answers(tuned, rated_run):
    examples, _ = load_examples(rated_run["ratings"], rated_run["run"])
    profile = get_profile("nhr", str(tuned["prompts"]))
    reqs = [profile.requests(e.triplet, e.instruction, *e.images())[0] for e in examples[:3]]
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=0)
    answers = {}
    for name, extra in (("base", {}), ("tuned", {"lora": str(tuned["out"])})):
        opts = {"model": str(tuned["judge"]), "device": "cpu", "max_new_tokens": 48, "max_pixels": 4096, **extra}
        judge = build_backend("validator", "transformers", opts, ctx)
        judge.preflight(judge.options, ctx)
        judge.setup()
        answers[name] = [a.text for a in judge.ask(reqs)]
        judge.teardown()
    assert all(t.startswith('{"adherence": 4.9') for t in answers["tuned"]), answers["tuned"]
    assert not any(profile.parse([t]).ok for t in answers["base"]) and answers["base"] != answers["tuned"]


def test_a_mining_run_judges_with_the_tuned_validator(tuned, ray_local, tmp_path):
    from nhr_ray.runtime.pipeline import run

    opts = {"model": str(tuned["judge"]), "lora": str(tuned["out"]), "device": "cpu", "max_new_tokens": 48,
            "max_pixels": 4096, "batch_size": 8}  # fmt: skip
    cfg = small_config(**{**RUN_SETS, **sim_except("validator"), "task.num_scenes": 2, "roles.validator.backend": "transformers",
                          "roles.validator.num_gpus": 0, "roles.validator.options": json.dumps(opts),
                          "judging.validation.prompt_dir": str(tuned["prompts"])})  # fmt: skip
    run(cfg, tmp_path / "run")
    funnel = json.loads((tmp_path / "run" / "funnel.json").read_text())
    val = funnel["stages"]["validation"]
    raws = [r["validation_raw"] for f in glob.glob(str(tmp_path / "run" / "data" / "attempts-*.parquet"))
            for r in pq.read_table(f, columns=["validation_raw"]).to_pylist() if r["validation_raw"]]  # fmt: skip
    assert val["in"] > 0 and val["kept"] > 0 and funnel["balanced"]["validation"], (val, raws[:4])
    rows = [r for f in glob.glob(str(tmp_path / "run" / "data" / "attempts-*.parquet"))
            for r in pq.read_table(f, columns=["validation_outcome", "validation_raw", "adherence", "aesthetics"]).to_pylist()
            if r["validation_outcome"] is not None]  # fmt: skip
    kept = [r for r in rows if r["validation_outcome"] == "kept"]
    # only the tuned judge says exactly this; the base model's answers never parse (test above)
    assert kept and all((r["adherence"], r["aesthetics"]) == (4.9, 4.8) for r in kept)
    assert sum(r["validation_raw"].startswith('{"adherence": 4.9') for r in rows) >= 0.5 * len(rows)


# ----- bad input: refused with the reason, before any model loads -------------------------------------


def _tune(ratings, run, out, capsys, base="/nonexistent-but-unused", *extra):
    rc = main(["tune-judge", str(ratings), "--run", str(run), "--base", str(base), "--out", str(out), *extra])
    return rc, capsys.readouterr().err.strip()


def test_too_few_rated_triplets_is_refused_before_training(rated_run, tiny_models, tmp_path, capsys):
    rows = [{"triplet": t, "rater": r, "adherence": 4.0, "aesthetics": 4.0} for t in rated_run["ids"][:5] for r in ("a", "b")]
    rc, err = _tune(write_ratings(tmp_path / "few.parquet", rows), rated_run["run"], tmp_path / "out", capsys, tiny_models["vlm"])
    assert rc == 2 and len(err.splitlines()) == 1
    assert "5 usable rated triplets cannot be split with --holdout 0.2: that leaves 4 to train on and 1 held out" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_ratings_of_another_run_are_refused(rated_run, tiny_models, tmp_path, capsys):
    rows = [{"triplet": f"x{k}", "rater": "a", "adherence": 4.0, "aesthetics": 4.0} for k in range(10)]
    rc, err = _tune(write_ratings(tmp_path / "other.parquet", rows), rated_run["run"], tmp_path / "out", capsys, tiny_models["vlm"])
    assert rc == 2 and "none of the 10 rated ids is a triplet or attempt of" in err and "another run" in err


@pytest.mark.parametrize("case", ["out_not_empty", "no_base", "base_not_a_checkpoint", "no_images_without_run"])
def test_unusable_arguments_are_refused_with_the_reason(case, rated_run, tiny_models, tmp_path, capsys):
    out, base, run = tmp_path / "out", tiny_models["vlm"], rated_run["run"]
    if case == "out_not_empty":
        out.mkdir()
        (out / "adapter_config.json").write_text("{}")
    elif case == "no_base":
        base = tmp_path / "missing"
    elif case == "base_not_a_checkpoint":
        base = tmp_path
    rc = main(["tune-judge", str(rated_run["ratings"]), "--base", str(base), "--out", str(out)]
              + ([] if case == "no_images_without_run" else ["--run", str(run)]))  # fmt: skip
    err = capsys.readouterr().err
    want = {"out_not_empty": "exists and is not empty", "no_base": "no such folder", "base_not_a_checkpoint": "no config.json",
            "no_images_without_run": "without --run it must carry the images"}[case]  # fmt: skip
    assert rc == 2 and want in err
