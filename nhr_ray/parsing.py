"""Parsers for untrusted model text. They never raise: each returns a value or a named reason.

Reasons are short snake_case names that end up as counted outcomes in the funnel and the attempts
table, next to the raw text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false"}


@dataclass
class Parsed:
    value: Any = None
    reason: str = "ok"  # 'ok' or why it could not be used

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def extract_json(text: str | None, want: type) -> Parsed:
    """Find a JSON value of type `want` (list or dict) in text that may carry prose or code fences
    around it. Returns reason 'empty', 'no_json' or 'truncated_json' when none can be read."""
    if text is None or not text.strip():
        return Parsed(reason="empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    opener, closer = ("[", "]") if want is list else ("{", "}")
    decoder = json.JSONDecoder()
    saw_opener = False
    for cand in candidates:
        for i, ch in enumerate(cand):
            if ch != opener:
                continue
            saw_opener = True
            try:
                value, _ = decoder.raw_decode(cand, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, want):
                return Parsed(value)
    if saw_opener and closer not in text[text.find(opener):]:
        return Parsed(reason="truncated_json")
    return Parsed(reason="no_json")


def parse_yes_no(text: str | None) -> Parsed:
    """One-word yes/no answers. Accepts case, punctuation and a trailing explanation after the first
    word; anything else is 'unparseable_answer' (never a silent yes)."""
    if text is None or not text.strip():
        return Parsed(reason="empty")
    first = re.split(r"[\s,.:;!]+", text.strip().strip("\"'*`").lower(), maxsplit=1)[0]
    if first in _YES:
        return Parsed(True)
    if first in _NO:
        return Parsed(False)
    return Parsed(reason="unparseable_answer")


def _as_score(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


# our keys, then the paper's scoring prompt's (SPEC A.2: InstructionAdherence / ImageAesthetic), compared
# without case, spaces, '_' or '-'
SCORE_KEYS = {"adherence": ("adherence", "instructionadherence"), "aesthetics": ("aesthetics", "imageaesthetic")}


def parse_scores(text: str | None, lo: float = 1.0, hi: float = 5.0) -> Parsed:
    """{"adherence": x, "aesthetics": y} (or the paper's keys) with x, y in [lo, hi]. Reasons: empty,
    no_json, truncated_json, missing_field, conflicting_fields, non_numeric_score, out_of_range_score."""
    p = extract_json(text, dict)
    if not p.ok:
        return p
    obj = {re.sub(r"[\s_-]", "", str(k).lower()): v for k, v in p.value.items()}
    out = {}
    for key, names in SCORE_KEYS.items():
        given = [_as_score(obj[n]) for n in names if n in obj]
        if not given:
            return Parsed(reason="missing_field")
        s = given[0]
        if any(g is None for g in given):
            return Parsed(reason="non_numeric_score")
        if any(g != s for g in given[1:]):
            return Parsed(reason="conflicting_fields")  # both spellings, two different scores
        if not lo <= s <= hi:
            return Parsed(reason="out_of_range_score")
        out[key] = s
    return Parsed(out)


SCORES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "adherence": {"type": "number", "minimum": 1.0, "maximum": 5.0},
        "aesthetics": {"type": "number", "minimum": 1.0, "maximum": 5.0},
    },
    "required": ["adherence", "aesthetics"],
    "additionalProperties": False,
}

SCENES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"prompt": {"type": "string"}, "edits": {"type": "array", "items": {"type": "string"}}},
        "required": ["prompt", "edits"],
    },
}
