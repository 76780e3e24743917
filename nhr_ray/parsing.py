"""Parsers for untrusted model text. They never raise: each returns a value or a named reason.

Reasons are short snake_case names that end up as counted outcomes in the funnel and the attempts
table, next to the raw text. Hostile text is bounded before any work: an answer longer than the
caller's `max_chars` is `answer_too_long` (not parsed), JSON nested deeper than MAX_JSON_DEPTH is
`json_too_deep` (found by one linear scan, before the recursive decoder sees it), a number Python
refuses to convert is `json_number_too_long`, and at most MAX_JSON_STARTS places per text are tried
as the start of a JSON value, so no answer costs more than linear time or raises.
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
_JSON_SYNTAX = re.compile(r'["\\\[\]{}]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

MAX_ANSWER_CHARS = 20_000  # a judge's or inverter's answer (config: answers.max_chars)
MAX_JSON_DEPTH = 32  # our answers nest 3 deep; the decoder recurses once per level
MAX_JSON_STARTS = 64  # places tried as the start of a JSON value, per candidate text


@dataclass
class Parsed:
    value: Any = None
    reason: str = "ok"  # 'ok' or why it could not be used

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in `text` outside JSON strings (one pass over its syntax)."""
    depth = deepest = 0
    in_string, skip_to = False, -1
    for m in _JSON_SYNTAX.finditer(text):
        i, ch = m.start(), m.group()
        if i < skip_to:  # the character after a backslash inside a string
            continue
        if in_string:
            if ch == "\\":
                skip_to = i + 2
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def too_long(text: str | None, max_chars: int) -> bool:
    return text is not None and len(text) > max_chars


def writable(text: str) -> str:
    """`text` with what UTF-8 cannot carry (lone surrogates, from JSON escapes) replaced by '?', so
    Parquet and JSON writers accept it."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def clean_text(s: str) -> str:
    """One line of text: control characters and runs of whitespace (newlines included) become one
    space, so no model- or file-supplied text adds lines to a prompt; what UTF-8 cannot carry
    becomes '?'."""
    return " ".join(writable(_CONTROL.sub(" ", s)).split())


def raw_text(text: str | None, max_chars: int = MAX_ANSWER_CHARS) -> str:
    """A model's answer as kept next to its verdict: at most max_chars of it, a cut one marked."""
    if text is None:
        return ""
    return writable(text if len(text) <= max_chars else f"{text[:max_chars]} ...[cut: {len(text):,} chars]")


def extract_json(text: str | None, want: type, max_chars: int = MAX_ANSWER_CHARS) -> Parsed:
    """Find a JSON value of type `want` (list or dict) in text that may carry prose or code fences
    around it. Returns reason 'empty', 'answer_too_long', 'json_too_deep', 'json_number_too_long',
    'no_json' or 'truncated_json' when none can be read."""
    if text is None or not text.strip():
        return Parsed(reason="empty")
    if too_long(text, max_chars):
        return Parsed(reason="answer_too_long")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    opener, closer = ("[", "]") if want is list else ("{", "}")
    decoder = json.JSONDecoder()
    saw_opener, refused = False, None
    for cand in candidates:
        if json_depth(cand) > MAX_JSON_DEPTH:
            refused = "json_too_deep"
            continue
        i, tries = cand.find(opener), 0
        while i >= 0 and tries < MAX_JSON_STARTS:
            saw_opener, tries = True, tries + 1
            try:
                value, _ = decoder.raw_decode(cand, i)
            except json.JSONDecodeError:
                value = None
            except RecursionError:  # deeper than the scan saw (a stray quote in prose hid it)
                value, refused = None, refused or "json_too_deep"
            except (ValueError, OverflowError):  # an int of more than 4300 digits
                value, refused = None, refused or "json_number_too_long"
            if isinstance(value, want):
                return Parsed(value)
            i = cand.find(opener, i + 1)
    if refused:
        return Parsed(reason=refused)
    if saw_opener and closer not in text[text.find(opener):]:
        return Parsed(reason="truncated_json")
    return Parsed(reason="no_json")


def parse_yes_no(text: str | None, max_chars: int = MAX_ANSWER_CHARS) -> Parsed:
    """One-word yes/no answers. Accepts case, punctuation and a trailing explanation after the first
    word; anything else is 'unparseable_answer' (never a silent yes), or 'answer_too_long'."""
    if text is None or not text.strip():
        return Parsed(reason="empty")
    if too_long(text, max_chars):
        return Parsed(reason="answer_too_long")
    first = re.split(r"[\s,.:;!]+", text.strip().strip("\"'*`").lower(), maxsplit=1)[0]
    if first in _YES:
        return Parsed(True)
    if first in _NO:
        return Parsed(False)
    return Parsed(reason="unparseable_answer")


def _as_score(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        if isinstance(v, (int, float)):
            f = float(v)
        elif isinstance(v, str):
            f = float(v.strip())
        else:
            return None
    except (ValueError, OverflowError):  # not a number, or an int too large for a float
        return None
    return f if math.isfinite(f) else None


# our keys, then the paper's scoring prompt's (SPEC A.2: InstructionAdherence / ImageAesthetic), compared
# without case, spaces, '_' or '-'
SCORE_KEYS = {"adherence": ("adherence", "instructionadherence"), "aesthetics": ("aesthetics", "imageaesthetic")}


def parse_scores(text: str | None, lo: float = 1.0, hi: float = 5.0, max_chars: int = MAX_ANSWER_CHARS) -> Parsed:
    """{"adherence": x, "aesthetics": y} (or the paper's keys) with x, y in [lo, hi]. Reasons: empty,
    no_json, truncated_json, answer_too_long, json_too_deep, json_number_too_long,
    missing_field, conflicting_fields, non_numeric_score, out_of_range_score."""
    p = extract_json(text, dict, max_chars)
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
