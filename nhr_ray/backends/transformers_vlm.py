"""Judges (gate, pre-filter, validator) with a Qwen2.5-VL model under plain transformers: the images
of a request in order, then its prompt (or the arrangement a judge profile asks for), one chat turn,
greedy by default. The raw model text is the answer; parsing belongs to the stages. Works without
torchvision (PIL image processor). A LoRA adapter (`lora`: one `nhr-ray tune-judge` wrote, or a
published judge's, e.g. EditScore-7B) is loaded over the base model with peft."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from nhr_ray.backends._common import (
    CallTimer,
    TorchOptions,
    check_local_model,
    error_text,
    image_error,
    require,
    resolve_model,
    torch_device,
    torch_dtype,
)
from nhr_ray.roles import Answer, BackendUnavailable, VisionJudge, VLMRequest


class TransformersVLMOptions(TorchOptions):
    model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Qwen2.5-VL checkpoint: hub id or folder.")
    model_class: Literal["qwen2_5_vl", "auto"] = Field(
        "qwen2_5_vl", description="'qwen2_5_vl': Qwen2_5_VLForConditionalGeneration; 'auto': AutoModelForImageTextToText."
    )
    temperature: float = Field(0.0, ge=0, description="0: greedy (the paper's ~1e-6 is greedy in effect).")
    max_new_tokens: int = Field(32, ge=1, description="Answer budget: one word, or a small JSON object.")
    batch_size: int = Field(8, ge=1, description="Requests per generate() call.")
    min_pixels: int | None = Field(None, ge=1, description="Image processor's lower pixel bound (None: checkpoint's).")
    max_pixels: int | None = Field(None, ge=1, description="Image processor's upper pixel bound (None: checkpoint's).")
    attn_implementation: str | None = Field(None, description="'sdpa', 'flash_attention_2', 'eager'; None: default.")
    system_prompt: str | None = Field(None, description="System turn; None: the chat template's default.")
    lora: str | None = Field(
        None, description="LoRA adapter over `model` (peft folder: absolute, under models_root, or a hub id); None: none."
    )
    merge_lora: bool = Field(True, description="Merge the adapter into the weights after loading (faster answers).")
    answer_mode: Literal["generate", "choice"] = Field(
        "generate",
        description="generate: free greedy/sampled text. choice: yes/no questions answered from the first-token "
        "probabilities of yes vs no (against yes_threshold), score questions (a numeric JSON schema) as each key's "
        "probability-weighted digit 1-5; other questions are generated (backends/choice_answers.py).",
    )
    yes_threshold: float = Field(
        0.5, ge=0, le=1, description="With choice: answer yes when P(yes) / (P(yes) + P(no)) is at least this."
    )
    yes_no_questions: list[str] = Field(
        ["plausibility", "unwanted_change", "aesthetics"], description="With choice: the questions read as yes/no."
    )


@functools.lru_cache(maxsize=2)
def _pil_processor_class(base: str = "Qwen2_5_VLProcessor"):
    """`base` (Qwen2_5_VLProcessor, or Qwen2VLProcessor as Qwen-Image-Edit saves it) with no video
    processor: the stock ones need torchvision for video."""
    import transformers

    parent = getattr(transformers, base)

    class PilProcessor(parent):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None, chat_template=chat_template)

    PilProcessor.__name__ = PilProcessor.__qualname__ = "Pil" + base
    return PilProcessor


def _chat_template(path: str, tokenizer) -> str | None:
    p = Path(path)
    if (p / "chat_template.jinja").is_file():
        return (p / "chat_template.jinja").read_text()
    if (p / "chat_template.json").is_file():
        return json.loads((p / "chat_template.json").read_text()).get("chat_template")
    return getattr(tokenizer, "chat_template", None)


def load_processor(
    path: str, min_pixels: int | None = None, max_pixels: int | None = None, base: str = "Qwen2_5_VLProcessor"
):
    """The checkpoint's processor; where AutoProcessor cannot build the image side (no torchvision),
    the same parts from the PIL image processor, tokenizer and chat template, as a `base` subclass."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    kw = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    try:
        proc = AutoProcessor.from_pretrained(path, **kw)
        if getattr(proc, "image_processor", None) is not None:
            return proc
    except Exception:  # noqa: BLE001  (video processor needs torchvision; fall back below)
        pass
    tok = AutoTokenizer.from_pretrained(path)
    improc = Qwen2VLImageProcessorPil.from_pretrained(path, **kw)
    return _pil_processor_class(base)(image_processor=improc, tokenizer=tok, chat_template=_chat_template(path, tok))


def lora_path(options, context) -> str:
    """Where `options.lora` is: resolved like a model (absolute, under models_root, else a hub id)."""
    return resolve_model(options.model_copy(update={"model": options.lora}), context)


def check_lora(options, context) -> None:
    """preflight: an adapter named as a folder must exist (and hold a peft adapter)."""
    try:
        check_local_model(options.model_copy(update={"model": options.lora}), context)
    except BackendUnavailable as e:
        raise BackendUnavailable(f"lora: {e}") from None
    path = Path(lora_path(options, context))
    if path.exists() and not (path / "adapter_config.json").is_file():
        raise BackendUnavailable(f"lora: {path} holds no adapter_config.json (not a peft adapter folder)")


def load_lora(model, path: str, merge: bool):
    """`model` with the peft adapter at `path` (a folder or a hub id) applied, merged or not."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, path)
    return (model.merge_and_unload() if merge else model).eval()


def chat_messages(req: VLMRequest, system: str | None) -> list[dict]:
    content = [{"type": "image"} if isinstance(x, int) else {"type": "text", "text": x} for x in req.content()]
    msgs = [{"role": "user", "content": content}]
    if system is not None:
        msgs.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return msgs


class TransformersJudge(VisionJudge):
    """Qwen2.5-VL judge under transformers (greedy; no torchvision needed)."""

    name = "transformers"
    Options = TransformersVLMOptions
    options: TransformersVLMOptions

    @classmethod
    def preflight(cls, options, context) -> None:
        require("torch", "pip install torch")
        require("transformers", "pip install 'transformers>=4.50'")
        check_local_model(options, context)
        if options.lora:
            require("peft", "pip install peft")
            check_lora(options, context)

    def setup(self) -> None:
        import transformers

        o = self.options
        self.device = torch_device(o.device)
        path = resolve_model(o, self.context)
        cls = (
            transformers.Qwen2_5_VLForConditionalGeneration
            if o.model_class == "qwen2_5_vl"
            else transformers.AutoModelForImageTextToText
        )
        kw = {"attn_implementation": o.attn_implementation} if o.attn_implementation else {}
        self.model = cls.from_pretrained(path, dtype=torch_dtype(o.dtype, self.device), **kw).to(self.device).eval()
        if o.lora:
            self.model = load_lora(self.model, lora_path(o, self.context), o.merge_lora)
        self.processor = load_processor(path, o.min_pixels, o.max_pixels)
        self.processor.tokenizer.padding_side = "left"
        self.vocab = None
        if o.answer_mode == "choice":
            from nhr_ray.backends.choice_answers import ChoiceVocab

            try:
                self.vocab = ChoiceVocab(self.processor.tokenizer)
            except ValueError as e:
                raise BackendUnavailable(str(e)) from e

    def teardown(self) -> None:
        self.model = self.processor = None

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        timer = CallTimer(self.context)
        answers = [Answer() for _ in requests]
        ok = []
        for i, r in enumerate(requests):
            err = next((e for e in (image_error(im, min_side=1) for im in r.images) if e), None)
            if err is None and not isinstance(r.prompt, str):
                err = "prompt is not text"
            if err:
                answers[i].error = err
            else:
                ok.append(i)
        bs = self.options.batch_size
        budgets = sorted({self._budget(requests[i]) for i in ok})
        for budget in budgets:  # one generate() per answer budget: a yes/no never runs on at 512 tokens
            same = [i for i in ok if self._budget(requests[i]) == budget]
            for k in range(0, len(same), bs):
                chunk = same[k : k + bs]
                self._run([requests[i] for i in chunk], [answers[i] for i in chunk])
        return timer.charge(answers)

    def _budget(self, req: VLMRequest) -> int:
        return req.max_tokens or self.options.max_new_tokens

    def _run(self, reqs: list[VLMRequest], outs: list[Answer]) -> None:
        try:
            results = self._generate(reqs)
        except Exception as e:  # noqa: BLE001  (one bad item must not fail its batch)
            if len(reqs) > 1:
                for r, a in zip(reqs, outs):
                    self._run([r], [a])
                return
            outs[0].error = error_text(e)
            return
        for a, (text, n_in, n_out) in zip(outs, results):
            a.text = text
            a.usage.update(input_tokens=float(n_in), output_tokens=float(n_out))

    def _generate(self, reqs: list[VLMRequest]) -> list[tuple[str, int, int]]:
        if self.vocab is None:
            return self._generate_text(reqs)
        from PIL import Image

        from nhr_ray.backends import choice_answers as ca

        o, picked = self.options, []
        for r in reqs:
            keys = ca.score_keys(r.json_schema)
            if r.question not in o.yes_no_questions and keys is None:
                picked.append(None)
                continue
            text = self.processor.apply_chat_template(chat_messages(r, o.system_prompt), tokenize=False, add_generation_prompt=True)
            images = [Image.fromarray(im) for im in r.images]
            picked.append(ca.answer(self.model, self.processor, self.device, text, images, self.vocab,
                                    None if r.question in o.yes_no_questions else keys, o.yes_threshold))  # fmt: skip
        rest = iter(self._generate_text([r for r, c in zip(reqs, picked) if c is None]) if None in picked else [])
        return [c if c is not None else next(rest) for c in picked]

    def _generate_text(self, reqs: list[VLMRequest]) -> list[tuple[str, int, int]]:
        import torch
        from PIL import Image

        o = self.options
        texts = [
            self.processor.apply_chat_template(chat_messages(r, o.system_prompt), tokenize=False, add_generation_prompt=True)
            for r in reqs
        ]
        images = [Image.fromarray(im) for r in reqs for im in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(self.device)
        gen = dict(max_new_tokens=max(self._budget(r) for r in reqs), do_sample=o.temperature > 0)
        if o.temperature > 0:
            gen["temperature"] = o.temperature
        else:
            gen.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        new = out[:, inputs["input_ids"].shape[1] :]
        pad = self.processor.tokenizer.pad_token_id
        results = []
        for row, mask in zip(new, inputs["attention_mask"]):
            n_out = int((row != pad).sum()) if pad is not None else len(row)
            results.append((self.processor.tokenizer.decode(row, skip_special_tokens=True), int(mask.sum()), n_out))
        return results
