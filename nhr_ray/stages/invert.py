"""Stage 9: inversion. An LLM reads the scene prompt and the forward instruction and writes one short
instruction that undoes the change, never using revert/undo/restore/back. <Ie, inverse, I0> is a new
triplet. The answer is untrusted: labels and quotes are repaired, everything else is a named drop."""

from __future__ import annotations

import re

from nhr_ray.parsing import MAX_ANSWER_CHARS, clean_text, raw_text, too_long
from nhr_ray.prompts import render
from nhr_ray.records import Verdict
from nhr_ray.roles import TextRequest
from nhr_ray.stages.base import Stage, Tally, error_verdict

_LABEL = re.compile(r"^\s*(inverse instruction|instruction|answer)\s*:\s*", re.I)


def check_inverse(text: str | None, forbidden: list[str], max_chars: int,
                  max_answer_chars: int = MAX_ANSWER_CHARS) -> tuple[str | None, str]:  # fmt: skip
    """-> (clean instruction or None, reason)."""
    if text is None or not text.strip():
        return None, "empty"
    if too_long(text, max_answer_chars):
        return None, "answer_too_long"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 1:
        return None, "not_single_instruction"
    s = clean_text(_LABEL.sub("", lines[0]).strip().strip("\"'`"))
    if not s:
        return None, "empty"
    if len(s) > max_chars:
        return None, "too_long"
    for w in forbidden:
        if re.search(rf"\b{re.escape(w)}\b", s, re.I):
            return None, "forbidden_word"
    return s, "ok"


class InvertStage(Stage):
    name = "inversion"
    role = "inverter"

    def process(self, forwards: list[dict]) -> tuple[list[tuple[dict, str | None]], Tally, list[dict]]:
        """forwards: forward triplet rows (prompt, edit_instruction, sample_id). Returns each with its
        inverse instruction or None, the tally and usage."""
        cfg = self.config.inversion
        reqs = [
            TextRequest(f["sample_id"], "invert", render("inverse", prompt=f["prompt"], instruction=f["edit_instruction"]))
            for f in forwards
        ]
        tally, out, usage = Tally(self.name), [], []
        cap = self.config.answers.max_chars
        for f, ans in zip(forwards, self.backend.complete(reqs) if reqs else []):
            usage.append(ans.usage)
            raw = raw_text(ans.text, cap)
            if ans.error:
                v, text = error_verdict(self.name, ans.error, raw), None
            else:
                text, reason = check_inverse(ans.text, cfg.forbidden_words, cfg.max_chars, cap)
                v = Verdict(self.name, text is not None, reason, raw)
            tally.add(v)
            out.append((f, text, v))
        return out, tally, usage
