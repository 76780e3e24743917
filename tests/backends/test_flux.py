"""FLUX source-image backend on a tiny random-weight FluxPipeline, for real, on CPU."""

import numpy as np
import pytest
from pydantic import ValidationError

from nhr_ray.roles import BackendContext, T2IRequest, build_backend


@pytest.fixture(scope="module")
def flux(tiny_models):
    ctx = BackendContext(role="t2i", run_seed=0, num_gpus=2.0)
    gen = build_backend("t2i", "flux", {"model": "flux-tiny", "models_root": str(tiny_models["root"]), "batch_size": 3}, ctx)
    gen.preflight(gen.options, ctx)
    gen.setup()
    yield gen
    gen.teardown()


def test_same_prompt_seed_size_reproduces_the_image_alone_or_batched(flux):
    alone = flux.generate([T2IRequest("a", "a red cat on a table", 7, 64, 48)])[0]
    batch = flux.generate(
        [
            T2IRequest("x", "a blue car", 1, 64, 48),
            T2IRequest("a", "a red cat on a table", 7, 64, 48),
            T2IRequest("y", "a lamp", 2, 48, 64),
        ]
    )
    assert alone.error is None and alone.image.shape == (48, 64, 3) and alone.image.dtype == np.uint8
    assert np.abs(alone.image.astype(int) - batch[1].image.astype(int)).max() <= 1
    assert batch[2].image.shape == (64, 48, 3)
    other_seed = flux.generate([T2IRequest("a", "a red cat on a table", 8, 64, 48)])[0]
    assert np.abs(other_seed.image.astype(int) - alone.image.astype(int)).mean() > 1


def test_gpu_seconds_split_evenly_and_scaled_by_gpus_held(flux):
    answers = flux.generate([T2IRequest(str(i), "a dog", i, 64, 64) for i in range(4)])
    shares = {a.gpu_seconds for a in answers}
    assert len(shares) == 1 and shares.pop() > 0
    flux.context.num_gpus = 0.0
    try:
        assert all(a.gpu_seconds == 0 for a in flux.generate([T2IRequest("z", "a dog", 1, 64, 64)]))
    finally:
        flux.context.num_gpus = 2.0


def test_bad_items_are_errors_not_exceptions_and_odd_sizes_come_back_exact(flux):
    answers = flux.generate(
        [T2IRequest("e", "", 1, 64, 64), T2IRequest("o", "a cup", 3, 70, 50), T2IRequest("n", "a cup", 3, 0, 50)]
    )
    assert answers[0].error == "empty prompt" and answers[0].image is None
    assert answers[1].error is None and answers[1].image.shape == (50, 70, 3)
    assert answers[1].meta["resized"] == {"model": [64, 48], "output": [70, 50]}  # sides snapped to 16
    assert "bad size" in answers[2].error


def test_options_forbid_unknown_keys():
    from nhr_ray.backends.diffusers_t2i import FluxOptions

    with pytest.raises(ValidationError, match="stepz"):
        FluxOptions(stepz=4)
    assert FluxOptions().steps == 4 and FluxOptions().guidance_scale == 0.0
