"""Tokenizers for the tiny checkpoints (nhr_ray/testing/tiny_models.py), trained here with the
`tokenizers` library from a few words: no hub."""

from __future__ import annotations

import string


_WORDS = (
    "a an the of on in at with and or to is are red green blue yellow white black small large left right "
    "top bottom centre center front back behind table chair cat dog apple cup book lamp tree car house "
    "sky wall floor window remove add make change replace turn into style photo image yes no"
).split()


# ----- tokenizers --------------------------------------------------------------------------------


def _byte_chars() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def clip_tokenizer():
    """Byte-level BPE with CLIP's `</w>` word ends and a few learned merges."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[tuple[str, str]] = []
    for w in ("the", "red", "cat"):  # enough merges to exercise the BPE path
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            a, b = parts[0], parts[1]
            merges.append((a, b))
            vocab.setdefault(a + b, len(vocab))
            parts = [a + b] + parts[2:]
    for t in ("<|startoftext|>", "<|endoftext|>"):
        vocab[t] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    tok.model_max_length = 77
    return tok


def t5_tokenizer():
    """Unigram pieces: T5's special tokens, single characters, and a small word list."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for c in string.ascii_letters + string.digits + string.punctuation:
        pieces.append((c, -5.0))
        pieces.append(("\u2581" + c, -5.5))
    pieces += [("\u2581" + w, -3.0) for w in _WORDS]
    seen: set[str] = set()
    uniq = [p for p in pieces if not (p[0] in seen or seen.add(p[0]))]
    tok = T5TokenizerFast(vocab=uniq, extra_ids=0)
    tok.model_max_length = 512
    return tok


QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip

# Qwen2-VL's conversation format, written out: system turn, then user turns whose image parts
# become <|vision_start|><|image_pad|><|vision_end|>, then the assistant prefix.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer():
    """Byte-level BPE like Qwen2's, with the chat and vision special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(_byte_chars())}
    merges: list[tuple[str, str]] = []
    for w in ("yes", "no"):
        parts = list(w)
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1]] + parts[2:]
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL,
        model_max_length=32768,
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok
