"""diffusers editor on tiny FLUX Kontext, Qwen-Image-Edit and InstructPix2Pix pipelines, for real, on CPU."""

import numpy as np
import pytest
from pydantic import ValidationError

from nhr_ray.backends.diffusers_edit import DiffusersEditOptions
from nhr_ray.roles import BackendContext, EditRequest, build_backend

ODD_SIZES = [(72, 40), (33, 57), (50, 50), (64, 48)]  # (w, h): not all multiples of the model's grid


def _editor(tiny_models, pipeline, model, **extra):
    ctx = BackendContext(role="editor", run_seed=0, num_gpus=1.0)
    opts = {"model": model, "models_root": str(tiny_models["root"]), "pipeline": pipeline, "steps": 2, "min_steps": 1, **extra}
    ed = build_backend("editor", "diffusers", opts, ctx)
    ed.preflight(ed.options, ctx)
    ed.setup()
    return ed


@pytest.fixture(scope="module")
def kontext(tiny_models):
    return _editor(tiny_models, "flux_kontext", "kontext-tiny", batch_size=2)


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in ODD_SIZES]


def test_kontext_output_is_at_the_source_size_for_odd_buckets(kontext):
    imgs = _images()
    answers = kontext.edit([EditRequest(f"e{i}", im, "remove the cat", i) for i, im in enumerate(imgs)])
    for im, a in zip(imgs, answers):
        assert a.error is None and a.image.shape == im.shape and a.image.dtype == np.uint8
        assert a.meta["pipeline"] == "flux_kontext" and a.meta["steps"] == 2
        on_grid = im.shape[0] % kontext.multiple == 0 and im.shape[1] % kontext.multiple == 0
        assert ("resized" in a.meta) == (not on_grid)
    assert answers[1].meta["resized"]["source"] == [33, 57]


def test_each_attempt_has_its_own_seed_and_a_seed_reproduces(kontext):
    im = _images()[3]
    a = kontext.edit([EditRequest(f"a{s}", im, "make the sky red", s) for s in (1, 2, 1)])
    assert np.abs(a[0].image.astype(int) - a[2].image.astype(int)).max() <= 1
    assert np.abs(a[0].image.astype(int) - a[1].image.astype(int)).mean() > 1


def test_bad_items_become_errors_and_the_rest_of_the_batch_is_edited(kontext):
    good = _images()[0]
    answers = kontext.edit(
        [
            EditRequest("empty", np.zeros((0, 8, 3), np.uint8), "remove it", 1),
            EditRequest("gray", np.zeros((8, 8), np.uint8), "remove it", 1),
            EditRequest("noinstr", good, "  ", 1),
            EditRequest("ok", good, "remove the lamp", 1),
        ]
    )
    assert "sides must be" in answers[0].error and "HxWx3" in answers[1].error and answers[2].error == "empty instruction"
    assert answers[3].error is None and answers[3].image.shape == good.shape
    assert all(a.gpu_seconds > 0 for a in answers)


def test_a_pipeline_failure_is_the_item_error(kontext, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(kontext, "_call", boom)
    answers = kontext.edit([EditRequest(str(i), im, "remove it", i) for i, im in enumerate(_images()[:2])])
    assert [a.error for a in answers] == ["RuntimeError: CUDA out of memory (simulated)"] * 2


def test_max_area_scales_large_sources_down_and_back(tiny_models):
    ed = _editor(tiny_models, "flux_kontext", "kontext-tiny", max_area=32 * 32)
    im = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = ed.edit([EditRequest("big", im, "remove the cup", 3)])[0]
    assert a.image.shape == im.shape
    w, h = a.meta["resized"]["model"]
    assert w * h <= 32 * 32 * 1.2 and a.meta["resized"]["source"] == [80, 60]


def test_instruct_pix2pix_keeps_the_source_size(tiny_models):
    ed = _editor(tiny_models, "instruct_pix2pix", "pix2pix-tiny")
    imgs = _images(2)
    answers = ed.edit([EditRequest(f"p{i}", im, "turn it into a painting", i) for i, im in enumerate(imgs)])
    assert [a.image.shape for a in answers] == [im.shape for im in imgs]


# ----- Qwen-Image-Edit: loaded with a torchvision-free processor passed to from_pretrained -----------


@pytest.fixture(scope="module")
def qwen(tiny_models):
    # the pipeline conditions on a 1024x1024 copy of every source: ~5 s of tiny-VAE conv3d on CPU
    return _editor(tiny_models, "qwen_image_edit", "qwen-edit-tiny", batch_size=2, condition_area=64 * 64)


def test_qwen_edit_loads_without_torchvision(qwen):
    import importlib.util

    assert type(qwen.pipe).__name__ == "QwenImageEditPipeline"
    assert qwen.pipe.processor.image_processor is not None and qwen.pipe.processor.tokenizer is not None
    if importlib.util.find_spec("torchvision") is None:
        assert type(qwen.pipe.processor).__name__ == "PilQwen2VLProcessor"
    assert qwen.multiple == 2 * qwen.pipe.vae_scale_factor == 32 and qwen.guidance == 4.0


def test_qwen_edit_condition_area_sizes_the_conditioning_copy(qwen, monkeypatch):
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit as mod

    seen = []
    encode = qwen.pipe.vae.encode
    monkeypatch.setattr(qwen.pipe.vae, "encode", lambda x, *a, **k: seen.append(tuple(x.shape[-2:])) or encode(x, *a, **k))
    original = mod.calculate_dimensions
    a = qwen.edit([EditRequest("c", _images()[0], "remove the cat", 0)])[0]  # 72x40 -> model 64x32
    assert a.error is None and seen == [(32, 96)]  # 64*64 px at 2:1, sides rounded to 32 (not 736x1376)
    assert mod.calculate_dimensions is original


def test_qwen_edit_output_is_at_the_source_size_for_odd_sizes(qwen):
    imgs = _images()
    answers = qwen.edit([EditRequest(f"q{i}", im, "remove the cat", i) for i, im in enumerate(imgs)])
    for im, a in zip(imgs, answers):
        assert a.error is None and a.image.shape == im.shape and a.image.dtype == np.uint8
        assert a.meta["pipeline"] == "qwen_image_edit" and a.meta["steps"] == 2
        assert "resized" in a.meta  # none of these sides is a multiple of 32
        assert a.gpu_seconds > 0
    assert answers[1].meta["resized"] == {"source": [33, 57], "model": [32, 64]}


def test_qwen_edit_has_one_seed_per_attempt_and_a_seed_reproduces(qwen):
    im = _images()[3]
    a = qwen.edit([EditRequest(f"s{s}", im, "make the sky red", s) for s in (1, 2, 1)])
    assert all(x.error is None for x in a)
    assert np.abs(a[0].image.astype(int) - a[2].image.astype(int)).max() <= 1  # same batch, same seed
    assert np.abs(a[0].image.astype(int) - a[1].image.astype(int)).mean() > 1
    again = qwen.edit([EditRequest("s1", im, "make the sky red", 1)])[0]  # alone, in a new call
    assert np.abs(a[0].image.astype(int) - again.image.astype(int)).max() <= 1


def test_qwen_edit_item_errors_are_answer_errors_and_the_rest_is_edited(qwen, monkeypatch):
    good = _images()[2]
    real = qwen.pipe

    def pipe(**kw):  # the real pipeline, failing on one prompt, as a model error for one item would
        if any("explode" in p for p in kw["prompt"]):
            raise ValueError("simulated model failure")
        return real(**kw)

    monkeypatch.setattr(qwen, "pipe", pipe)
    answers = qwen.edit(
        [
            EditRequest("empty", np.zeros((0, 8, 3), np.uint8), "remove it", 1),
            EditRequest("noinstr", good, "", 1),
            EditRequest("bad", good, "explode", 2),
            EditRequest("ok", good, "remove the lamp", 3),
        ]
    )
    assert "sides must be" in answers[0].error and answers[1].error == "empty instruction"
    assert answers[2].error == "ValueError: simulated model failure" and answers[2].image is None
    assert answers[3].error is None and answers[3].image.shape == good.shape


def test_steps_are_validated_in_the_paper_range_by_default():
    assert DiffusersEditOptions().steps == 28
    with pytest.raises(ValidationError, match=r"steps 4 outside 18\.\.28"):
        DiffusersEditOptions(steps=4)
    assert DiffusersEditOptions(steps=4, min_steps=1).steps == 4
    with pytest.raises(ValidationError, match="pipeline"):
        DiffusersEditOptions(pipeline="sdxl")
