"""LoRA fine-tuning of a Qwen2.5-VL judge (peft + transformers) to answer a profile's scoring prompt
with the de-biased human scores.

Every training item is one question of the profile (most profiles ask one per triplet, EditScore two)
rendered exactly as the judge backends render it at mining time (`chat_messages` + the checkpoint's
chat template), followed by the answer text the profile's parser reads (`profile.answers`) and the
end-of-turn token. The loss is on the answer tokens only. Adapters go on the language model's linear
layers (attention and MLP), not on the vision tower: that is also what vLLM's LoRA serving supports.

A plain loop (AdamW, linear warm-up and decay, gradient accumulation over --batch-size items) rather
than TRL's SFTTrainer: the items are few, each carries its own images, and the label mask must
follow the chat template; TRL would add a dependency and a collator to write for the same loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nhr_ray.backends._common import torch_device, torch_dtype
from nhr_ray.backends.transformers_vlm import chat_messages, load_processor
from nhr_ray.judges.profiles import JudgeProfile
from nhr_ray.products.tune.data import Example

TARGET_MODULES = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
END_OF_TURN = "<|im_end|>"


@dataclass
class TuneSettings:
    epochs: int = 3
    steps: int | None = None  # optimizer steps; overrides epochs
    lr: float = 1e-4
    lora_rank: int = 16
    lora_alpha: int | None = None  # None: 2 x rank
    lora_dropout: float = 0.05
    batch_size: int = 8  # items per optimizer step (gradient accumulation)
    warmup_steps: int = 0
    max_pixels: int | None = 1_003_520  # image processor bound (Qwen2.5-VL's default is far larger)
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_items(examples: list[Example], profile: JudgeProfile) -> list[tuple[Example, int, str]]:
    """(example, index of the profile's question, target answer) for every question of every example."""
    items = []
    for ex in examples:
        for k, target in enumerate(profile.answers(ex.adherence, ex.aesthetics)):
            items.append((ex, k, target))
    return items


def encode(processor, profile: JudgeProfile, ex: Example, k: int, target: str):
    """Model inputs with labels: -100 over the prompt, the target's tokens after it."""
    from PIL import Image

    before, after = ex.images()
    req = profile.requests(ex.triplet, ex.instruction, before, after)[k]
    prompt = processor.apply_chat_template(chat_messages(req, None), tokenize=False, add_generation_prompt=True)
    images = [Image.fromarray(im) for im in req.images]
    full = processor(text=[prompt + target + END_OF_TURN], images=images, return_tensors="pt")
    prompt_ids = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"][0]
    ids = full["input_ids"][0]
    n_prompt = len(prompt_ids)
    if ids[:n_prompt].tolist() != prompt_ids.tolist():  # a token merged across the boundary: mask the common prefix
        n_prompt = next(i for i, (a, b) in enumerate(zip(ids.tolist(), prompt_ids.tolist())) if a != b)
    labels = full["input_ids"].clone()
    labels[:, :n_prompt] = -100
    full["labels"] = labels
    return full


def _peft_model(base_model, s: TuneSettings):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha or 2 * s.lora_rank, lora_dropout=s.lora_dropout,
                     target_modules=TARGET_MODULES, task_type="CAUSAL_LM")  # fmt: skip
    if s.gradient_checkpointing:
        base_model.gradient_checkpointing_enable()
        base_model.enable_input_require_grads()
    return get_peft_model(base_model, cfg)


def train(base: str, examples: list[Example], profile: JudgeProfile, out, s: TuneSettings) -> dict[str, Any]:
    """Fit a LoRA adapter, save it to `out` (peft format); -> loss curve and counts."""
    import torch
    import transformers

    torch.manual_seed(s.seed)
    device = torch_device(s.device)
    model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(base, dtype=torch_dtype(s.dtype, device)).to(device)
    processor = load_processor(base, max_pixels=s.max_pixels)
    model = _peft_model(model, s)
    model.train()
    items = training_items(examples, profile)
    per_epoch = math.ceil(len(items) / s.batch_size)
    total = s.steps or per_epoch * s.epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.lr)
    sched = transformers.get_linear_schedule_with_warmup(opt, s.warmup_steps, total)
    rng = np.random.default_rng(s.seed)
    order: list[int] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    for _ in range(total):
        step_loss = 0.0
        for _ in range(s.batch_size):
            if not order:
                order = list(rng.permutation(len(items)))
            ex, k, target = items[order.pop()]
            batch = encode(processor, profile, ex, k, target).to(device)
            loss = model(**batch).loss / s.batch_size
            loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(step_loss)
    model.save_pretrained(str(out))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    del model
    return {"loss": losses, "steps": total, "items": len(items), "items_per_step": s.batch_size,
            "trainable_parameters": int(trainable), "train_seconds": time.perf_counter() - t0}  # fmt: skip
