"""diffusers editor on tiny FLUX Kontext and InstructPix2Pix pipelines, for real, on CPU."""

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


def test_steps_are_validated_in_the_paper_range_by_default():
    assert DiffusersEditOptions().steps == 28
    with pytest.raises(ValidationError, match=r"steps 4 outside 18\.\.28"):
        DiffusersEditOptions(steps=4)
    assert DiffusersEditOptions(steps=4, min_steps=1).steps == 4
    with pytest.raises(ValidationError, match="pipeline"):
        DiffusersEditOptions(pipeline="sdxl")
