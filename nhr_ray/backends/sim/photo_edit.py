"""SIMULATION. The simulated editor on an image the simulation did not make (a photo): it knows no
scene, so it edits the box the instruction points at (perceive._photo_region) in the given pixels,
with the same kinds of outcome it has on its own images."""

from __future__ import annotations

import cv2
import numpy as np

from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.perceive import _photo_region
from nhr_ray.backends.sim.render import vae_noise


def _fill(img: np.ndarray, box: np.ndarray, instruction: str, half: bool = False) -> np.ndarray:
    """The box painted in the colour the instruction names (its surroundings' mean colour when it
    names none: a removal), or its left half only."""
    out = img.copy()
    colour = next((c for name, c in W.COLOURS.items() if f" {name}" in f" {instruction.lower()}"), None)
    ys, xs = np.nonzero(box)
    if half:
        box = box & (np.arange(box.shape[1])[None, :] < (xs.min() + xs.max()) // 2)
    mean = img[box].mean(axis=0)
    fill = np.array(colour, np.uint8) if colour is not None else np.where(mean < 128, 255, 0).astype(np.uint8)
    out[box] = fill
    return out


def edit_photo(img: np.ndarray, instruction: str, outcome: str, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if outcome == "no_change":
        return vae_noise(img, rng)
    if outcome == "scattered_noise":
        out = img.copy()
        n = max(200, int(0.06 * h * w))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        out[ys, xs] = out[ys, xs] + np.uint8(128)
        return vae_noise(out, rng)
    box = _photo_region(instruction, h, w)
    if outcome == "wrong_object":  # another place than the one named
        box = np.roll(box, (h // 2, w // 2), axis=(0, 1))
    out = _fill(img, box, instruction, half=outcome == "partial")
    if outcome == "collateral_drift":  # and, unasked, another part of the picture brightened
        other = np.roll(box, (h // 2, w // 2), axis=(0, 1)) & ~box
        out = np.clip(out.astype(np.int16) + np.where(other[..., None], 70, 0), 0, 255).astype(np.uint8)
    out = vae_noise(out, rng)
    if outcome == "off_size":
        out = cv2.resize(out, (w + 16, h + 8), interpolation=cv2.INTER_LINEAR)
    return out
