"""Each judge profile through real backends: the tiny Qwen2.5-VL under transformers (with the judge's
own chat arrangement), and hosted judges on local servers that answer in the paper's keys."""

import numpy as np
import pytest

from nhr_ray.backends.transformers_vlm import chat_messages
from nhr_ray.config import validate_config
from nhr_ray.judges import get_profile, profile_names
from nhr_ray.records import Attempt, Instruction, Job, Source
from nhr_ray.roles import ROLE_KINDS, BackendContext, build_backend
from nhr_ray.stages.validation import ValidationStage
from nhr_ray.runtime.ratelimit import reset_local
from nhr_ray.testing.fake_api import FakeAPIServer

VISION = "<|vision_start|><|image_pad|><|vision_end|>"
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"


def _img(w, h, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def judge(tiny_models):
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=0)
    j = build_backend("validator", "transformers", {"model": str(tiny_models["vlm"]), "device": "cpu", "max_new_tokens": 4}, ctx)
    j.setup()
    return j


def test_each_judge_sees_its_own_chat_arrangement(judge):
    """EditScore's template (editscore/mllm_tools/qwen25vl.py): '<imgN>: ' before each image, prompt
    after; ImgEdit-Judge's usage: prompt first, then both images; ours: images, then prompt."""
    before, after = _img(32, 24, 0), _img(32, 24, 1)
    render = lambda r: judge.processor.apply_chat_template(chat_messages(r, None), tokenize=False, add_generation_prompt=True)  # noqa: E731
    sc, pq = get_profile("editscore").requests("a", "Make the sky green", before, after)
    tail = "<|im_end|>\n<|im_start|>assistant\n"
    assert render(sc) == SYSTEM + f"<img1>: {VISION}<img2>: {VISION}" + sc.prompt + tail
    assert render(pq) == SYSTEM + f"<img1>: {VISION}" + pq.prompt + tail and pq.images[0] is after
    [ie] = get_profile("imgedit-judge").requests("a", "Make the sky green", before, after)
    assert render(ie) == SYSTEM + ie.prompt + VISION + VISION + tail and "Make the sky green" in ie.prompt
    [ours] = get_profile("nhr").requests("a", "Make the sky green", before, after)
    assert render(ours) == SYSTEM + VISION + VISION + ours.prompt + tail


@pytest.mark.parametrize("name", profile_names())
def test_transformers_judge_answers_every_profile_and_each_answer_is_counted(judge, name, monkeypatch):
    # the reasoning judges' own budgets (512, 128 tokens) take minutes on CPU: 24 shows the mechanism
    monkeypatch.setattr("nhr_ray.judges.editscore.MAX_TOKENS", 24)
    monkeypatch.setattr("nhr_ray.judges.imgedit.ImgEditJudgeProfile.max_tokens", 24)
    profile = get_profile(name)
    reqs = [r for k in range(2) for r in profile.requests(f"a{k}", "Remove the lamp", _img(40, 32, k), _img(40, 32, k + 5))]
    answers = judge.ask(reqs)
    assert all(a.error is None and isinstance(a.text, str) for a in answers)
    per = len(reqs) // 2
    for k in range(2):
        p = profile.parse([a.text for a in answers[k * per : (k + 1) * per]])
        assert p.ok or p.reason in {"no_json", "truncated_json", "empty", "missing_field", "unparseable_answer",
                                    "non_numeric_score", "out_of_range_score", "wrong_score_count"}  # fmt: skip
    budget = max(r.max_tokens or 4 for r in reqs)
    assert all(a.usage["output_tokens"] <= budget for a in answers)
    if name in ("editscore", "imgedit-judge"):  # a reasoning judge gets its own answer budget, not the option's 4
        assert max(a.usage["output_tokens"] for a in answers) > 4


# ----- hosted judges answering in the paper's keys (issue 18) -------------------------------------------


@pytest.fixture
def gemini_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaTESTkeyForTheProfileTests0000")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    reset_local()
    yield
    reset_local()


def _attempt(k: int) -> tuple[Attempt, Source]:
    src = Source(f"S{k}.n00", f"S{k}", "a lamp on a table", 0, 24, 16, _img(24, 16, k))
    job = Job(f"S{k}.n00.i0.a0", f"S{k}.n00.i0", src.source_id, 0, 0, 0)
    return Attempt(job, Instruction(0, "Remove the lamp", "remove"), 24, 16, edited=_img(24, 16, k + 9)), src


def _validate(backend: str, api: dict, profile: str, options: dict) -> list:
    cfg = validate_config({"api": api, "judging": {"validation": {"profile": profile}},
                           "roles": {**{r: {"backend": "sim"} for r in ROLE_KINDS if r != "validator"},
                                     "validator": {"backend": backend, "options": options}}})  # fmt: skip
    stage = ValidationStage(cfg)
    stage.setup()
    try:
        pairs = [_attempt(k) for k in range(3)]
        r = stage.process([a for a, _ in pairs], {s.source_id: s for _, s in pairs})
        attempts, tally = r.rows, r.tally
    finally:
        stage.teardown()
    assert tally.kept == 3 and tally.balanced()
    return [a.verdicts[-1] for a in attempts]


PAPER_ANSWER = '{"InstructionAdherence": 4.8, "ImageAesthetic": 4.9}'


@pytest.mark.parametrize("profile", ["nhr-paper-keys", "nhr"])
def test_gemini_validator_answering_in_the_paper_keys_is_accepted(profile, gemini_key):
    with FakeAPIServer("gemini", responder=lambda rec: PAPER_ANSWER) as srv:
        verdicts = _validate("gemini", {"gemini": {"base_url": srv.base_url, "max_retries": 0}}, profile,
                             {"model": "tunedModels/nhr-paper-format"})  # fmt: skip
    assert [(v.reason, v.adherence, v.aesthetics) for v in verdicts] == [("ok", 4.8, 4.9)] * 3
    rec = srv.records[0]
    schema = rec.body["generationConfig"]["responseJsonSchema"]
    if profile == "nhr-paper-keys":  # asked for, and constrained to, the paper's keys
        assert '{"InstructionAdherence": <float>, "ImageAesthetic": <float>}' in rec.body["contents"][0]["parts"][-1]["text"]
        assert schema["required"] == ["InstructionAdherence", "ImageAesthetic"]
    else:  # asked for ours; a judge tuned on the paper's format answers in its keys anyway, and is read
        assert schema["required"] == ["adherence", "aesthetics"]


def test_openai_server_validator_answering_in_the_paper_keys_is_accepted():
    with FakeAPIServer("openai", responder=lambda rec: "```json\n" + PAPER_ANSWER + "\n```") as srv:
        verdicts = _validate("openai_server", {}, "nhr-paper-keys", {"base_url": srv.base_url, "model": "nhr-judge"})
    assert all((v.keep, v.adherence, v.aesthetics) == (True, 4.8, 4.9) for v in verdicts)
    body = srv.records[0].body
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["InstructionAdherence", "ImageAesthetic"]
    kinds = [p["type"] for p in body["messages"][0]["content"]]
    assert kinds == ["image_url", "image_url", "text"]


def test_openai_server_gets_a_published_judges_layout_and_answer_budget():
    """EditScore through an OpenAI-compatible server (`vllm serve` of base + LoRA): '<imgN>: ' text
    parts before the images, two questions per edit, 512 tokens for its reasoning."""
    answer = '{"reasoning": "done", "score": [25, 24]}'
    with FakeAPIServer("openai", responder=lambda rec: answer) as srv:
        verdicts = _validate("openai_server", {}, "editscore", {"base_url": srv.base_url, "model": "editscore-7b"})
    assert all(v.keep and v.adherence == pytest.approx(1 + 4 * 24 / 25) and v.aesthetics == pytest.approx(1 + 4 * 24 / 25)
               for v in verdicts)  # fmt: skip
    assert len(srv.records) == 6 and all(r.body["max_tokens"] == 512 for r in srv.records)
    parts = sorted((r.body["messages"][0]["content"] for r in srv.records), key=len)
    assert [p.get("text", p["type"]) for p in parts[0][:2]] == ["<img1>: ", "image_url"]  # quality: the edit alone
    assert [p.get("text", p["type"]) for p in parts[-1][:4]] == ["<img1>: ", "image_url", "<img2>: ", "image_url"]
