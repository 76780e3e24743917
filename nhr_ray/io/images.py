"""Image encoding for Parquet ({bytes, path} structs as HF `Image` stores them) and safe decoding:
size limits are checked from the header before any pixel is decoded (no decompression bombs).

Pillow's own guard (`Image.MAX_IMAGE_PIXELS`) is left as Pillow sets it, for every library in the
process; each decode here applies the caller's limit (the run's `output.max_image_pixels`) on top,
and an image past Pillow's hard limit is `too_large` as well. 16-bit greyscale is scaled to 8 bits
(Pillow's own conversion clips it, which turns most of it white) and EXIF orientation is applied,
so a phone photo stands the way it was taken.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

_ORIENTATION = 0x0112  # EXIF tag: 1 upright, 2-8 mirrored and/or rotated


class ImageRejected(ValueError):
    """An image that must not be decoded or used; the message is a short reason name."""


def encode(img: np.ndarray, fmt: str = "png") -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if fmt == "webp" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{fmt}", bgr, params)
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    return buf.tobytes()


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image's header, read and checked against `max_pixels`; no pixel decoded yet."""
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # past Pillow's own hard limit, whatever ours says
        raise ImageRejected("too_large") from None
    except Exception:
        raise ImageRejected("not_an_image") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageRejected("too_large")
    return im


def _upright(im: Image.Image, notes: list[str]) -> Image.Image:
    """EXIF orientation applied (a note says so); unreadable EXIF leaves the image as stored."""
    try:
        if im.getexif().get(_ORIENTATION) in (2, 3, 4, 5, 6, 7, 8):
            im = ImageOps.exif_transpose(im)
            notes.append("exif_rotated")
    except Exception:  # noqa: BLE001  a damaged EXIF block is no reason to lose the pixels
        notes.append("exif_unreadable")
    return im


def _rgb(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grey (mode I: read as 16-bit, clipped)
        wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if im.mode in ("P", "LA", "PA"):
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


def decode_photo(data: bytes, max_pixels: int = 64_000_000) -> tuple[np.ndarray, list[str]]:
    """-> (HxWx3 uint8 RGB, notes such as 'converted_from_cmyk', 'converted_from_i16', 'exif_rotated').
    Raises ImageRejected('not_an_image' | 'too_large' | 'truncated')."""
    im = _open(data, max_pixels)
    try:
        im.load()
    except Exception:
        raise ImageRejected("truncated") from None
    notes: list[str] = []
    im = _upright(im, notes)
    if im.mode != "RGB":
        notes.append(f"converted_from_{im.mode.lower().replace(';', '')}")
        im = _rgb(im)
    return np.asarray(im, dtype=np.uint8).copy(), notes


def decode(data: bytes, max_pixels: int = 64_000_000) -> np.ndarray:
    """-> HxWx3 uint8 RGB. Raises ImageRejected('not_an_image' | 'too_large' | 'truncated' ...)."""
    return decode_photo(data, max_pixels)[0]


def image_struct(data: bytes | None, path: str | None = None) -> dict | None:
    return None if data is None else {"bytes": data, "path": path}
