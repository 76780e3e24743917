"""SIMULATION. Draws scene states into real RGB pixels, and applies simulated edit outcomes."""

from __future__ import annotations

import functools
import json
from typing import Any

import cv2
import numpy as np

from nhr_ray.backends.sim import world as W
from nhr_ray.records import item_rng


def scene_state(prompt: str, width: int, height: int) -> dict[str, Any]:
    objs = W.parse_objects(prompt)
    return {
        "w": width,
        "h": height,
        "setting": W.parse_setting(prompt),
        "style": W.parse_style(prompt),
        "objects": [dict(o.__dict__, present=True, mangled=False) for o in objs],
        "implausible": False,
        "extra_blob": False,
    }


def _shape(img: np.ndarray, shape: str, cx: int, cy: int, r: int, colour, mangled: bool) -> None:
    c = tuple(int(v) for v in colour)
    edge = tuple(int(v * 0.55) for v in colour)
    if shape == "circle":
        cv2.circle(img, (cx, cy), r, c, -1)
        cv2.circle(img, (cx, cy), r, edge, max(1, r // 8))
    elif shape in ("rect", "tall"):
        rw, rh = (r, r) if shape == "rect" else (r // 2, int(r * 1.4))
        cv2.rectangle(img, (cx - rw, cy - rh), (cx + rw, cy + rh), c, -1)
        cv2.rectangle(img, (cx - rw, cy - rh), (cx + rw, cy + rh), edge, max(1, r // 8))
    elif shape == "ellipse":
        cv2.ellipse(img, (cx, cy), (r, int(r * 0.7)), 0, 0, 360, c, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], c)
    else:  # diamond
        pts = np.array([[cx, cy - r], [cx - r, cy], [cx, cy + r], [cx + r, cy]], np.int32)
        cv2.fillPoly(img, [pts], c)
    if mangled:  # a melted, broken object
        cv2.line(img, (cx - r, cy + r), (cx + r, cy - r // 2), edge, max(2, r // 3))


def object_box(state: dict[str, Any], obj: dict[str, Any]) -> tuple[int, int, int, int]:
    w, h = state["w"], state["h"]
    fx, fy = W.POSITIONS[obj["position"]]
    r = max(3, int(W.SIZES[obj["size"]] * min(w, h)))
    cx, cy = int(fx * w), int(fy * h)
    ry = int(r * 1.4) + 2
    return max(0, cx - r - 2), max(0, cy - ry), min(w, cx + r + 3), min(h, cy + ry + 1)


@functools.lru_cache(maxsize=128)
def _rendered(state_json: str, texture_seed: int) -> np.ndarray:
    img = render(json.loads(state_json), texture_seed)
    img.flags.writeable = False
    return img


def rendered(state: dict[str, Any], texture_seed: int) -> np.ndarray:
    """render(), read-only and kept for the next call with the same scene: the editor draws a source and
    its asked-for edit once for the k x M attempts of it, a judge the scenes of a source's candidates."""
    return _rendered(json.dumps(state, sort_keys=True), texture_seed)


def render(state: dict[str, Any], texture_seed: int) -> np.ndarray:
    w, h = state["w"], state["h"]
    top, bottom = (np.array(c, np.float32) for c in W.SETTINGS[state["setting"]])
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + bottom * t
    img = np.broadcast_to(img, (h, w, 3)).copy()
    tex = np.random.default_rng(texture_seed).integers(-6, 7, size=(h, w, 1)).astype(np.float32)
    img = np.clip(img + tex, 0, 255).astype(np.uint8)
    # back to front (the farther up the picture, the farther away), whatever order the scene lists them
    # in: an object added back by an inverse edit lands where it was
    for o in sorted(state["objects"], key=lambda o: (W.POSITIONS[o["position"]][1], o["position"])):
        if not o["present"]:
            continue
        fx, fy = W.POSITIONS[o["position"]]
        r = max(3, int(W.SIZES[o["size"]] * min(w, h)))
        _shape(img, W.OBJECTS[o["name"]], int(fx * w), int(fy * h), r, W.COLOURS[o["colour"]], o["mangled"])
    if state["extra_blob"]:
        cv2.circle(img, (w // 2, h // 2), max(4, min(w, h) // 7), (128, 64, 200), -1)
    if state["implausible"]:
        rng = np.random.default_rng(texture_seed + 1)
        for _ in range(3):
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p1, p2, (255, 0, 255), max(2, min(w, h) // 40))
    sat, levels, tint = W.STYLES[state["style"]]
    if sat != 1.0 or levels or any(tint):
        f = img.astype(np.float32)
        grey = f.mean(axis=2, keepdims=True)
        f = np.clip(grey + (f - grey) * sat + np.array(tint, np.float32), 0, 255)
        if levels:
            step = 256 / levels
            f = np.floor(f / step) * step + step / 2
        img = f.astype(np.uint8)
    return img


def vae_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The small everywhere-difference a real encode/decode round trip leaves (|d| <= 3)."""
    n = rng.integers(-3, 4, size=img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + n, 0, 255).astype(np.uint8)


def find_target(state: dict[str, Any], cat: str, groups: tuple[str, ...]) -> int | None:
    """Index of the drawn object the instruction points at, or None (not drawn / not found)."""
    for i, o in enumerate(state["objects"]):
        if not o["present"]:
            continue
        if cat == "removal" and (o["colour"], o["name"], o["position"]) == groups[:3]:
            return i
        if cat == "colour_change" and (o["name"], o["position"]) == groups[:2]:
            return i
        if cat == "replacement" and (o["colour"], o["name"], o["position"]) == groups[:3]:
            return i
    return None


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a scene state to change (its values are strings, numbers and booleans, and the
    objects flat dicts of them: copying those is a deep copy, at a tenth of copy.deepcopy's cost)."""
    return {k: [dict(o) for o in v] if k == "objects" else v for k, v in state.items()}


def apply_edit(state: dict[str, Any], parsed, target: int | None) -> dict[str, Any]:
    """The state a perfect editor would produce."""
    s = copy_state(state)
    if parsed is None:
        s["extra_blob"] = True
        return s
    cat, g = parsed
    if cat == "removal_all":
        for o in s["objects"]:
            o["present"] = False
    elif cat == "addition":
        s["objects"].append({"size": g[0], "colour": g[1], "name": g[2], "position": g[3], "present": True, "mangled": False})
    elif cat == "style":
        s["style"] = g[0]
    elif target is not None:
        o = s["objects"][target]
        if cat == "removal":
            o["present"] = False
        elif cat == "colour_change":
            o["colour"] = g[2]
        elif cat == "replacement":
            o["colour"], o["name"] = g[3], g[4]
    return s


def render_outcome(
    state: dict[str, Any], parsed, target: int | None, outcome: str, texture_seed: int, run_seed: int, attempt: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The edited image for this outcome, and the scene it shows (what the editor writes into its tag)."""
    rng = item_rng(run_seed, attempt, "pixels")
    src = rendered(state, texture_seed)  # read-only: copied before any change
    if outcome == "no_change":
        return vae_noise(src, rng), state
    if outcome == "scattered_noise":
        out = src.copy()
        n = max(200, int(0.06 * out.shape[0] * out.shape[1]))  # isolated specks, no real edit
        ys, xs = rng.integers(0, out.shape[0], n), rng.integers(0, out.shape[1], n)
        out[ys, xs] = out[ys, xs] + np.uint8(128)
        return vae_noise(out, rng), state
    present = [i for i, o in enumerate(state["objects"]) if o["present"]]
    targeted = parsed is not None and parsed[0] in ("removal", "colour_change", "replacement")
    if outcome == "partial" and targeted and target is None:
        outcome = "wrong_object"  # the target was never drawn: the editor changes something else
    if outcome == "wrong_object":
        others = [i for i in present if i != target]
        if others:
            target = int(rng.choice(others))
            if parsed is not None and parsed[0] in ("removal", "colour_change", "replacement"):
                drawn = apply_edit(state, parsed, target)
                return vae_noise(rendered(drawn, texture_seed), rng), drawn
            s = copy_state(state)
            s["objects"][target]["colour"] = "black" if s["objects"][target]["colour"] != "black" else "white"
            return vae_noise(rendered(s, texture_seed), rng), s
        outcome = "partial"
    goal = apply_edit(state, parsed, target)
    edited = rendered(goal, texture_seed)  # read-only: copied before any change
    if outcome == "partial":  # a share (0.3-0.8) of what the edit changes: of its target, of an added object, or of the picture
        if target is not None:
            x0, y0, x1, y1 = object_box(state, state["objects"][target])
        elif parsed is not None and parsed[0] == "addition":
            x0, y0, x1, y1 = object_box(goal, goal["objects"][-1])
        else:
            x0, y0, x1, y1 = 0, 0, edited.shape[1], edited.shape[0]
        out = src.copy()
        xm = x0 + int(round((x1 - x0) * rng.uniform(0.3, 0.8)))
        out[y0:y1, x0:xm] = edited[y0:y1, x0:xm]
        return vae_noise(out, rng), state
    if outcome == "collateral_drift":
        others = [i for i in present if i != target]
        if others:
            j = int(rng.choice(others))
            drift = copy_state(goal)
            drift["objects"][j]["colour"] = "pink" if goal["objects"][j]["colour"] != "pink" else "teal"
            x0, y0, x1, y1 = object_box(goal, goal["objects"][j])  # a share (0.35-1) of another object recoloured
            xm = x0 + int(round((x1 - x0) * rng.uniform(0.35, 1.0)))
            edited = edited.copy()
            edited[y0:y1, x0:xm] = render(drift, texture_seed)[y0:y1, x0:xm]
        else:
            edited = np.clip(edited.astype(np.int16) + 45, 0, 255).astype(np.uint8)
    out = vae_noise(edited, rng)
    if outcome == "off_size":
        out = cv2.resize(out, (out.shape[1] + 16, out.shape[0] + 8), interpolation=cv2.INTER_LINEAR)
    return out, goal
