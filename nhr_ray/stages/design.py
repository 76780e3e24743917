"""Stage 1: prompt design. An LLM returns a JSON array of {"prompt", "edits"}; its text is untrusted:
parse, validate, repair what can be repaired (counted as notes) or drop (counted by reason).

Each edit is {"instruction": ..., "category": ...}: the designer labels its own instructions (it knows
that "Lose the crocheted blanket." is a removal). A plain string, a missing or an unknown label falls
back to the regular expressions below, counted as `category_fallback:<why>`; a good label is counted
as `category_labelled`. The prompt's rules are then checked (design_rules.py)."""

from __future__ import annotations

import re
from collections import Counter

from nhr_ray.config import CATEGORIES
from nhr_ray.parsing import clean_text, extract_json
from nhr_ray.prompts import render
from nhr_ray.records import Instruction, Scene
from nhr_ray.roles import TextRequest
from nhr_ray.stages.base import Stage, StageResult, Tally
from nhr_ray.stages.design_rules import apply_rules

_CATEGORY_RULES = [
    ("style", re.compile(r"\bstyle\b|\bturn the (whole )?(image|picture|photo|scene) into\b|\bmake it look like\b|\brender (it|the image) as\b|\bas an? [a-z ]*(painting|sketch|drawing|render|pixel art)\b", re.I)),
    ("replacement", re.compile(r"\breplace\b|\bswap\b|\bsubstitute\b|\bexchange\b", re.I)),
    ("removal", re.compile(r"\bremove\b|\bdelete\b|\berase\b|\bget rid of\b|\btake (out|away)\b|\beliminate\b", re.I)),
    ("colour_change", re.compile(r"\bcolou?r\b|\b(make|turn|paint|dye|recolou?r)\b.*\b(red|blue|green|yellow|purple|orange|white|black|pink|teal|brown|grey|gray|gold|silver)\b", re.I)),
    ("addition", re.compile(r"\badd\b|\bplace\b|\bput\b|\binsert\b|\bdraw\b|\bintroduce\b", re.I)),
]


_STYLES = [
    ("watercolour", r"watercolou?r"), ("oil painting", r"oil painting"), ("pixel art", r"pixel art"),
    ("ink sketch", r"ink sketch|pencil sketch|line drawing"), ("3d render", r"\b3d render|\bcgi\b"),
    ("anime", r"\banime\b|\bmanga\b"), ("illustration", r"illustration|cartoon|comic"),
    ("painting", r"painting"), ("photograph", r"photo|photograph|dslr|\blens\b|\bmm\b"),
]  # fmt: skip


def infer_style(prompt: str) -> str:
    """The visual style a scene prompt asks for (first match), 'unspecified' when none is named."""
    for name, rx in _STYLES:
        if re.search(rx, prompt, re.I):
            return name
    return "unspecified"


def classify_instruction(text: str) -> str:
    for cat, rx in _CATEGORY_RULES:
        if rx.search(text):
            return cat
    return "other"


def _label(value) -> str | None:
    """A designer's category label, normalised ('Colour change', 'color-change' -> 'colour_change');
    None when it is not one of CATEGORIES."""
    if not isinstance(value, str):
        return None
    v = "_".join(value.strip().lower().replace("-", " ").split()).replace("color", "colour")
    return v if v in CATEGORIES else None


def split_edits(edits: list) -> tuple[list, list]:
    """Designer edits (strings, or {"instruction", "category"} objects) -> (texts, raw labels)."""
    texts, labels = [], []
    for e in edits:
        if isinstance(e, dict):
            texts.append(e.get("instruction", e.get("text")))
            labels.append(e.get("category", None))
        else:
            texts.append(e)
            labels.append(None)
    return texts, labels


def categorise(text: str, label, notes: Counter) -> str:
    """The designer's label when it is a known category; else the regular expressions, counted."""
    cat = _label(label)
    if cat:
        notes["category_labelled"] += 1
        return cat
    notes["category_fallback:missing_label" if label is None else "category_fallback:unknown_label"] += 1
    return classify_instruction(text)


def design_scene_id(request_index: int, item_index: int) -> str:
    return f"S{request_index:04d}{item_index:03d}"


class DesignStage(Stage):
    name = "design"
    role = "designer"

    def request(self, request_index: int) -> TextRequest:
        t = self.config.task
        prompt = render(f"design_{t.operation}", task_description=t.description, count=t.items_per_request)
        return TextRequest(item_id=f"D{request_index:04d}", task=f"design:{t.operation}", prompt=prompt)

    def process(self, request_indices: list[int]) -> StageResult:
        """Rows: scenes; the tally's unit is the requested item."""
        reqs = [self.request(i) for i in request_indices]
        answers = self.backend.complete(reqs)
        tally, scenes, usage = Tally(self.name), [], []
        for idx, ans in zip(request_indices, answers):
            usage.append(ans.usage)
            s, t = parse_scenes(ans.text, ans.error, idx, self.config.task, self.config.answers.max_design_chars)
            scenes.extend(s)
            tally.merge(t)
        return self.result(scenes, tally, usage=usage)


def clean_instructions(edits: list, task, notes: Counter) -> list[tuple[int, str]]:
    """A scene's instructions under the task's rules (the designer's, and photo captions' too): text
    only, one line each, at most task.max_instruction_chars, no duplicates, at most
    task.max_instructions_per_scene; the rest are counted in `notes` and not read.
    -> (index in `edits`, clean text) of each kept one."""
    clean: list[tuple[int, str]] = []
    seen: set[str] = set()
    for k, e in enumerate(edits):
        if len(clean) >= task.max_instructions_per_scene:
            notes["instructions_over_limit"] += len(edits) - k
            break
        if not isinstance(e, str) or not e.strip():
            notes["instruction_not_text"] += 1
            continue
        c = clean_text(e)
        if c != e.strip():
            notes["instruction_whitespace_repaired"] += 1
        if len(c) > task.max_instruction_chars:
            notes["instruction_too_long"] += 1
        elif c in seen:
            notes["instruction_duplicate"] += 1
        else:
            seen.add(c)
            clean.append((k, c))
    return clean


def parse_scenes(text: str | None, error: str | None, request_index: int, task,
                 max_chars: int = 1_000_000) -> tuple[list[Scene], Tally]:  # fmt: skip
    expected = task.items_per_request
    tally = Tally("design")
    if error:
        tally.n_in += expected
        tally.failed[f"error:{error[:60]}"] += expected
        return [], tally
    parsed = extract_json(text, list, max_chars)
    if not parsed.ok:
        tally.drop(f"response_{parsed.reason}", expected)
        return [], tally
    items = parsed.value
    if len(items) > expected:
        tally.notes["extra_items_ignored"] += len(items) - expected
        items = items[:expected]
    if len(items) < expected:
        tally.drop("missing_items", expected - len(items))
    scenes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            tally.drop("item_not_an_object")
            continue
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            tally.drop("missing_prompt")
            continue
        prompt = clean_text(prompt)
        if len(prompt) > task.max_prompt_chars:
            tally.drop("prompt_too_long")
            continue
        edits = item.get("edits", item.get("instructions"))
        if isinstance(edits, str):
            edits = [edits]
            tally.notes["edits_string_wrapped"] += 1
        if not isinstance(edits, list):
            tally.drop("missing_edits")
            continue
        texts, labels = split_edits(edits)
        clean = [(c, categorise(c, labels[k], tally.notes)) for k, c in clean_instructions(texts, task, tally.notes)]
        if not clean:
            tally.drop("no_valid_edits")
            continue
        clean = apply_rules(clean, task.operation, tally.notes)
        if not clean:
            tally.drop("no_edit_left_by_rules")
            continue
        insts = [Instruction(j, c, cat) for j, (c, cat) in enumerate(clean)]
        scenes.append(Scene(design_scene_id(request_index, i), prompt, insts, infer_style(prompt)))
        tally.keep()
    return scenes, tally
