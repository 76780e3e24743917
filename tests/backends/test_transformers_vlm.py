"""Qwen2.5-VL judge under transformers on a tiny random-weight checkpoint, for real, on CPU."""

import numpy as np
import pytest

from nhr_ray.backends.transformers_vlm import load_processor
from nhr_ray.roles import BackendContext, VLMRequest, build_backend


@pytest.fixture(scope="module")
def judge(tiny_models):
    ctx = BackendContext(role="gate", run_seed=0, num_gpus=1.0)
    j = build_backend("gate", "transformers", {"model": str(tiny_models["vlm"]), "max_new_tokens": 6, "batch_size": 4}, ctx)
    j.preflight(j.options, ctx)
    j.setup()
    return j


def _img(w, h, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_two_images_and_a_prompt_give_raw_text_and_token_usage(judge):
    req = VLMRequest("s", "edit_scores", "Score the edit as JSON.", [_img(64, 48), _img(72, 40, 1)])
    a = judge.ask([req])[0]
    assert a.error is None and isinstance(a.text, str)
    assert a.usage["input_tokens"] > 10 and 0 < a.usage["output_tokens"] <= 6
    assert a.gpu_seconds > 0
    # greedy: the same request, alone or in a batch with others, says the same thing
    b = judge.ask([VLMRequest("o", "plausibility", "Plausible?", [_img(64, 64, 2)]), req])
    assert b[1].text == a.text


def test_bad_images_are_item_errors(judge):
    answers = judge.ask(
        [
            VLMRequest("e", "aesthetics", "Pleasing?", [np.zeros((0, 4, 3), np.uint8)]),
            VLMRequest("f", "aesthetics", "Pleasing?", [_img(32, 32).astype(np.float32)]),
            VLMRequest("g", "aesthetics", "Pleasing?", [_img(32, 32)]),
        ]
    )
    assert "sides must be" in answers[0].error and "uint8" in answers[1].error
    assert answers[2].error is None and isinstance(answers[2].text, str)


def test_the_processor_builds_without_torchvision_and_formats_images_in_order(tiny_models):
    proc = load_processor(str(tiny_models["vlm"]))
    assert proc.image_processor is not None
    from nhr_ray.backends.transformers_vlm import chat_messages

    text = proc.apply_chat_template(
        chat_messages(VLMRequest("x", "q", "Which is better?", [_img(8, 8)] * 2), None), tokenize=False, add_generation_prompt=True
    )
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.index("<|vision_end|>") < text.index("Which is better?") and text.endswith("<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def choice_judge(tiny_models):
    ctx = BackendContext(role="prefilter", run_seed=0, num_gpus=1.0)
    opts = {"model": str(tiny_models["vlm"]), "max_new_tokens": 6, "answer_mode": "choice"}
    j = build_backend("prefilter", "transformers", opts, ctx)
    j.setup()
    return j


def test_choice_mode_reads_yes_no_and_scores_from_token_probabilities(choice_judge):
    import re

    from nhr_ray.judges.nhr import _schema
    from nhr_ray.parsing import parse_scores, parse_yes_no

    imgs = [_img(64, 48), _img(72, 40, 1)]
    yn, sc, free = choice_judge.ask([
        VLMRequest("a", "unwanted_change", "Only the asked-for change?", imgs),
        VLMRequest("b", "edit_scores", "Score the edit as JSON.", imgs, _schema("InstructionAdherence", "ImageAesthetic")),
        VLMRequest("c", "edit_scores", "Score the edit as JSON.", imgs),  # no schema: generated as text
    ])  # fmt: skip
    m = re.fullmatch(r"(yes|no) \(p_yes=([01]\.\d{3})\)", yn.text)
    assert m and parse_yes_no(yn.text).ok and (m.group(1) == "yes") == (float(m.group(2)) >= 0.5)
    s = parse_scores(sc.text)
    assert s.ok and all(1.0 <= v <= 5.0 for v in s.value.values()), sc.text
    assert list(__import__("json").loads(sc.text)) == ["InstructionAdherence", "ImageAesthetic"]
    assert free.error is None and 0 < free.usage["output_tokens"] <= 6  # the generate path
    # the threshold decides: 0 passes every answer, 1 only a certain yes
    choice_judge.options.yes_threshold = 0.0
    assert choice_judge.ask([VLMRequest("d", "plausibility", "Plausible?", [_img(64, 64, 2)])])[0].text.startswith("yes")
    choice_judge.options.yes_threshold = 1.0
    assert choice_judge.ask([VLMRequest("d", "plausibility", "Plausible?", [_img(64, 64, 2)])])[0].text.startswith("no")
    choice_judge.options.yes_threshold = 0.5
