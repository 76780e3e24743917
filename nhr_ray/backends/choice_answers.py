"""Answers read from the model's next-token probabilities instead of free generation (the
transformers judge's `answer_mode: choice`). A yes/no question is answered by the share of "yes"
among the first-token probabilities of yes and no, against a threshold; a score question (a request
whose JSON schema lists numeric keys) by each key's probability-weighted mean over the digits 1-5,
read after the forced prefix `{"key": `. The answer is text in the shape the stages already parse
("yes (p_yes=0.731)", '{"adherence": 4.12, "aesthetics": 3.87}'), so parsing and counting are
unchanged; the probabilities stay visible in the raw answer. Works on any causal VLM with a chat
template; torch is imported by the caller."""

from __future__ import annotations

import json

YES = ("yes", "Yes", " yes", " Yes", "YES")
NO = ("no", "No", " no", " No", "NO")
DIGITS = ("1", "2", "3", "4", "5")


def first_token_ids(tokenizer, words) -> list[int]:
    ids = []
    for w in words:
        enc = tokenizer.encode(w, add_special_tokens=False)
        if enc and enc[0] not in ids:
            ids.append(enc[0])
    return ids


class ChoiceVocab:
    """Token ids of the answers a choice reads; raises ValueError when the tokenizer cannot tell
    them apart (then choice mode is not usable with this checkpoint)."""

    def __init__(self, tokenizer) -> None:
        yes, no = first_token_ids(tokenizer, YES), first_token_ids(tokenizer, NO)
        shared = set(yes) & set(no)  # a byte-level tokenizer may start " yes" and " no" with one space token
        self.yes, self.no = [t for t in yes if t not in shared], [t for t in no if t not in shared]
        if not self.yes or not self.no:
            raise ValueError("answer_mode=choice: the tokenizer cannot tell yes from no by the first token")
        self.digits = [first_token_ids(tokenizer, [d]) for d in DIGITS]
        flat = [d[0] for d in self.digits if d]
        if len(flat) != len(DIGITS) or len(set(flat)) != len(DIGITS):
            raise ValueError("answer_mode=choice: the digits 1-5 are not distinct single tokens")
        self.digits = flat


def score_keys(schema: dict | None) -> list[str] | None:
    """The numeric keys a score request asks for, in order (None: not a score request)."""
    props = (schema or {}).get("properties")
    if not isinstance(props, dict) or not props:
        return None
    keys = [k for k, v in props.items() if isinstance(v, dict) and v.get("type") in ("number", "integer")]
    return keys if len(keys) == len(props) else None


def yes_no_text(probs, vocab: ChoiceVocab, threshold: float) -> str:
    """probs: next-token probabilities (1-D tensor) after the question."""
    p_yes, p_no = float(probs[vocab.yes].sum()), float(probs[vocab.no].sum())
    share = p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.0
    return f"{'yes' if share >= threshold else 'no'} (p_yes={share:.3f})"


def expected_digit(probs, vocab: ChoiceVocab) -> float:
    p = probs[vocab.digits].double()
    total = float(p.sum())
    if total <= 0:
        return 1.0
    return round(sum((i + 1) * float(x) for i, x in enumerate(p)) / total, 2)


def score_prefix(done: dict[str, float], key: str) -> str:
    """The assistant text forced before reading `key`'s digit: the keys answered so far, then `key`."""
    head = json.dumps(done)[:-1] if done else "{"
    return head + (", " if done else "") + json.dumps(key) + ": "


def answer(model, processor, device, chat_text: str, images: list, vocab: ChoiceVocab, keys: list[str] | None,
           threshold: float) -> tuple[str, int, int]:  # fmt: skip
    """One request answered by choice -> (text, input tokens, answer tokens). chat_text: the chat
    template applied with the generation prompt; images: PIL images in order (may be empty)."""
    import torch

    def probs(suffix: str = ""):
        inputs = processor(text=[chat_text + suffix], images=images or None, return_tensors="pt").to(device)
        with torch.inference_mode():
            logits = model(**inputs).logits[0, -1]
        return torch.softmax(logits.float(), -1), int(inputs["input_ids"].shape[1])

    if keys is None:
        p, n = probs()
        return yes_no_text(p, vocab, threshold), n, 1
    done: dict[str, float] = {}
    n = 0
    for k in keys:
        p, n = probs(score_prefix(done, k))
        done[k] = expected_digit(p, vocab)
    return json.dumps(done), n, len(keys)
