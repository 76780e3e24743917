"""Image encoding for Parquet ({bytes, path} structs as HF `Image` stores them) and safe decoding:
size limits are checked from the header before any pixel is decoded (no decompression bombs)."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # we check sizes ourselves, before decoding, with our own limit


class ImageRejected(ValueError):
    """An image that must not be decoded or used; the message is a short reason name."""


def encode(img: np.ndarray, fmt: str = "png") -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if fmt == "webp" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{fmt}", bgr, params)
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    return buf.tobytes()


def decode(data: bytes, max_pixels: int = 64_000_000) -> np.ndarray:
    """-> HxWx3 uint8 RGB. Raises ImageRejected('not_an_image' | 'too_large' | 'truncated' ...)."""
    try:
        im = Image.open(io.BytesIO(data))
    except Exception:
        raise ImageRejected("not_an_image") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageRejected("too_large")
    try:
        im.load()
    except Exception:
        raise ImageRejected("truncated") from None
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") else im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def image_struct(data: bytes | None, path: str | None = None) -> dict | None:
    return None if data is None else {"bytes": data, "path": path}
