"""SIMULATION. How a simulated model perceives a candidate edit from what it is handed: the two images
(their pixels, and the scene a simulated image carries in them, tag.py) and the instruction text it
reads in its prompt. No label of the editor's is read: the judge imagines the asked-for edit on the
scene it recognises in the source image, and compares that with the pixels it got.

    D     pixels that changed between source and edit (|difference| > 40, the low-level check's D)
    E     pixels the asked-for edit changes (imagined; on a photo: the box the instruction points at)
    done       share of E whose pixels look as asked for
    outside    share of the image changed outside E (dilated)
    specks     share of that outside change in isolated specks (no real edit)

and names what it sees as one of the editor's kinds of outcome (`outcome`): clean, partial,
wrong_object, collateral_drift, scattered_noise, no_change, off_size. Being a perception, it can be
wrong, and it is the same whoever holds it (judges, and the sim-only oracle tests and benchmarks use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from nhr_ray.backends.sim import render as R
from nhr_ray.backends.sim import tag
from nhr_ray.backends.sim import world as W

THRESHOLD = 40
TARGETED = ("removal", "colour_change", "replacement")
_INSTRUCTION_LINE = re.compile(r"^\s*(?:editing )?instruction\s*:\s*(.+)$", re.I | re.M)


def instruction_in(prompt: str) -> str:
    """The instruction a model reads in its prompt: the text after 'Instruction:' (our prompts), else
    the first line the world's grammar parses, else the whole prompt."""
    m = _INSTRUCTION_LINE.search(prompt or "")
    if m:
        return m.group(1).strip().strip('"')
    for line in (prompt or "").splitlines():
        for piece in re.split(r'["“”]', line):
            if W.parse_instruction(piece.strip()):
                return piece.strip()
    return prompt or ""


def expected_state(state: dict[str, Any], instruction: str) -> tuple[dict[str, Any] | None, bool]:
    """The scene a perfect edit would give, and whether the instruction is feasible on this scene
    (None: it does not parse). Several objects to add ("Add a ... and a ...") are all added; a
    composed instruction ("A, then b") is each part in turn."""
    if ", then " in instruction:
        feasible = True
        for part in instruction.split(", then "):
            nxt, ok = expected_state(state, part)
            if nxt is None:
                return None, False
            state, feasible = nxt, feasible and ok
        return state, feasible
    parsed = W.parse_instruction(instruction)
    if parsed is None:
        return None, False
    cat, groups = parsed
    if cat == "addition" and " and " in instruction:
        s = R.copy_state(state)
        for m in W.PHRASE.finditer(instruction):
            size, colour, name, position = m.groups()
            s["objects"].append({"size": size, "colour": colour, "name": name, "position": position,
                                 "present": True, "mangled": False})  # fmt: skip
        return s, True
    target = R.find_target(state, cat, groups)
    if cat in TARGETED and target is None:
        return state, False
    if cat == "removal_all" and not any(o["present"] for o in state["objects"]):
        return state, False
    return R.apply_edit(state, parsed, target), True


@dataclass(frozen=True)
class Perceived:
    outcome: str
    done: float
    outside: float
    specks: float
    feasible: bool
    tagged: bool


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = cv2.absdiff(np.ascontiguousarray(a), np.ascontiguousarray(b))
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]) > THRESHOLD


def _photo_region(instruction: str, h: int, w: int) -> np.ndarray:
    """Where an instruction points on an image the model knows nothing more of: the box of the
    position it names (the centre when it names none), object-sized."""
    fx, fy = next((xy for p, xy in W.POSITIONS.items() if p in instruction.lower()), (0.5, 0.5))
    r = max(3, int(W.SIZES["large"] * min(w, h)))
    box = np.zeros((h, w), bool)
    cx, cy = int(fx * w), int(fy * h)
    box[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = True
    return box


def perceive(source: np.ndarray, edited: np.ndarray, instruction: str) -> Perceived:
    scene = tag.read(source)
    if source.shape != edited.shape:
        return Perceived("off_size", 0.0, 0.0, 0.0, True, scene is not None)
    d = _changed(source, edited)
    if scene is not None:
        state, tex = scene["state"], scene["texture_seed"]
        want, feasible = expected_state(state, instruction)
        # scenes rendered once and kept, read-only (render.rendered): a judge sees a source's k x M candidates in a row
        expected = R.rendered(want, tex) if feasible else None
        e = _changed(R.rendered(state, tex), expected) if feasible else np.zeros_like(d)
        ok = ~_changed(edited, expected) if feasible else np.zeros_like(d)
    else:  # a photo: the box the instruction names should change, nothing else
        feasible = W.parse_instruction(instruction) is not None
        e = _photo_region(instruction, *d.shape) if feasible else np.zeros_like(d)
        ok = d
    done = float((e & ok).sum() / e.sum()) if e.any() else 0.0
    grown = cv2.dilate(e.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    out = d & ~grown
    kept = cv2.morphologyEx(out.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    outside, specks = float(out.mean()), float((out & ~kept).mean())
    return Perceived(_name(d.mean(), done, outside, specks), done, outside, specks, feasible, scene is not None)


def _name(changed: float, done: float, outside: float, specks: float) -> str:
    if changed < 5e-4:
        return "no_change"
    if outside >= 5e-3 and specks >= 0.5 * outside:
        return "scattered_noise"
    if done >= 0.85:
        return "clean" if outside < 4e-3 else "collateral_drift"
    if done >= 0.25:
        return "partial"
    return "wrong_object"


def specks_alone(image: np.ndarray) -> float:
    """Share of an image's pixels that stand out from all their neighbours as isolated specks, as one
    sees noise in a picture with nothing to compare it to (a textured style has a few: 0-3 %)."""
    m = _changed(image, cv2.medianBlur(np.ascontiguousarray(image), 3)).astype(np.uint8)
    around = cv2.filter2D(m, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT)
    return float(((m == 1) & (around <= 2)).mean())
