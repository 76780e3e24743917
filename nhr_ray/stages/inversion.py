"""Stage 9: inversion. An LLM reads the scene prompt and the forward instruction and writes one short
instruction that undoes the change without referring to the undoing (no "revert", "put it back",
"red again", "its original colour"). <Ie, inverse, I0> is a new triplet. The answer is untrusted:
labels and quotes are repaired, everything else is a named drop. Until backward consistency (stage
11) judges it, an inverse's scores are its forward's (`score_source` 'inherited')."""

from __future__ import annotations

import re
from dataclasses import replace

from nhr_ray.parsing import MAX_ANSWER_CHARS, clean_text, raw_text, too_long
from nhr_ray.prompts import render
from nhr_ray.io.rows import TripletRow
from nhr_ray.records import Verdict, sample_id
from nhr_ray.roles import TextRequest
from nhr_ray.stages.base import Stage, StageResult, Tally, error_verdict
from nhr_ray.stages.design import classify_instruction

_LABEL = re.compile(r"^\s*(inverse instruction|instruction|answer)\s*:\s*", re.I)

# Wording that refers to undoing the earlier edit. "back", "again" and "original" are ordinary words
# ("the lamp at the back of the room", "again and again", "an original Miro print"); only their
# return-to-before senses are banned. Quoted text (a sign's lettering) is not read.
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|‘[^’]*’|(?<!\w)'[^']*'(?!\w)")
_NOUN_BEFORE = r"(?<!\bthe )(?<!\ba )(?<!\bits )(?<!\bhis )(?<!\bher )(?<!\btheir )(?<!\bour )(?<!\bmy )(?<!\byour )"
_POSTURE = r"(?<!looking )(?<!looks )(?<!facing )(?<!faces )(?<!leaning )(?<!leans )(?<!lying )(?<!glancing )(?<!staring )"
UNDO_WORDING = [
    # "put the cat back on the sofa", "turn the sky back to blue", "move it back where it was", "... back."
    ("back", re.compile(_NOUN_BEFORE + _POSTURE + r"\bback\b(?=\s+(?:to|in|into|on|onto|where|as|in place|the way)\b|\s*[.,;!]?\s*$)", re.I)),
    ("back", re.compile(r"\b(?:put|puts|bring|brings|give|gives|set|sets|get|gets|turn|turns|change|changes|switch|move|moves|paint|colou?r)\s+back\b", re.I)),
    # "make the car red again" (a clause ending in again), but not "again and again"
    ("again", re.compile(r"(?<!\band )\bagain\b(?!\s+and\s+again)(?=\s*(?:[.,;!]|$))", re.I)),
    # "its original colour", "the original position", "as it was before", "the previous edit"
    ("original", re.compile(r"\b(?:original|earlier|previous|former|initial)\s+(?:colou?rs?|state|look|position|place|spot|size|shape|"
                             r"form|appearance|version|image|photo|picture|scene|condition|edit|instruction|change)\b", re.I)),  # fmt: skip
    ("as_before", re.compile(r"\bas (?:it|they|he|she) (?:was|were|used to be)\b|\bas (?:before|originally)\b|\bto how\b", re.I)),
]


def undo_wording(text: str, forbidden: list[str]) -> str | None:
    """The kind of undo reference in an inverse instruction (None: there is none). `forbidden` words
    are banned in every form (revert, reverts, reverted, ...)."""
    s = _QUOTED.sub(" ", text)
    for w in forbidden:
        if re.search(rf"\b{re.escape(w)}(?:s|d|ed|ing|ne|es)?\b", s, re.I):
            return w
    return next((kind for kind, rx in UNDO_WORDING if rx.search(s)), None)


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
    if undo_wording(s, forbidden):
        return None, "forbidden_word"
    return s, "ok"


def inverse_triplet(f: TripletRow, text: str, run_seed: int) -> TripletRow:
    """<Ie, text, I0> from forward triplet `f`, its scores inherited from `f`."""
    return replace(
        f, sample_id=sample_id(run_seed, "inverse", f.attempt_id), kind="inverse", source_image=f.edited_image,
        edited_image=f.source_image, edit_instruction=text, category=classify_instruction(text), parents=[f.sample_id],
        lineage=f"inv:{f.attempt_id}", score_source="inherited", scored_by=None, scores_from=[f.sample_id],
    )  # fmt: skip


class InversionStage(Stage):
    name = "inversion"
    role = "inverter"

    def process(self, forwards: list[dict]) -> StageResult:
        """forwards: forward triplet rows (prompt, edit_instruction, sample_id). Rows: (forward, its
        inverse instruction or None, verdict, usage) each."""
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
            out.append((f, text, v, ans.usage))
        return self.result(out, tally, usage=usage)
