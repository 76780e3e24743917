"""Session fixture: the tiny random-weight checkpoints of nhr_ray.testing.tiny_models, built once.

Tests never reach a model hub: the offline switches are set before anything imports transformers."""

from __future__ import annotations

import os

import pytest

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{'root': Path, 't2i'|'kontext'|'pix2pix'|'vlm': Path} of freshly built tiny checkpoints."""
    from nhr_ray.testing.tiny_models import build_all

    root = tmp_path_factory.mktemp("tiny-models")
    paths = build_all(root)
    return {"root": root, **paths}
