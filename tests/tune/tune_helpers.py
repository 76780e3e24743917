"""Shared by the tune-judge tests: a tiny judge that can learn, a short prompt, ratings files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# a short scoring prompt (judging.<stage>.prompt_dir): the tiny tokenizer spells the packaged one out
# in ~900 tokens, which makes each CPU training step slow
SHORT_PROMPT = 'Score "$instruction" as {"$adherence_key": x, "$aesthetics_key": y}\n'


def short_prompt_dir(root: Path) -> Path:
    d = root / "short-prompts"
    d.mkdir(parents=True, exist_ok=True)
    (d / "edit_scores.md").write_text(SHORT_PROMPT)
    return d


def learnable_judge(tiny_vlm: Path, out: Path) -> Path:
    """The session's tiny Qwen2.5-VL widened to 64 and with a larger weight scale. The stock one
    (hidden size 32, weights of std 0.02 through a tied head) can barely move its next-token
    distribution off uniform, so no adapter on it can learn an answer; this one, still random and
    ~175k parameters, learns one in ~100 CPU steps."""
    import torch
    import transformers

    cfg = transformers.Qwen2_5_VLConfig.from_pretrained(tiny_vlm)
    t = cfg.text_config
    t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads = 64, 128, 4, 2
    t.initializer_range = 0.5
    cfg.vision_config.out_hidden_size = 64
    torch.manual_seed(0)
    model = transformers.Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config = transformers.GenerationConfig.from_pretrained(tiny_vlm)
    model.save_pretrained(out)
    for f in Path(tiny_vlm).iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, out)
    return out


def write_ratings(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def service_account_file(path: Path, token_uri: str) -> Path:
    """A real service-account key file whose token endpoint is a local server (ADC reads it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({"type": "service_account", "project_id": "proj", "private_key_id": "k1",
                                "private_key": pem.decode(), "client_email": "tuner@proj.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": token_uri}))  # fmt: skip
    return path
