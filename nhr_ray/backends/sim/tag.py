"""SIMULATION. What the simulated T2I model and editor write into the pixels they produce, and the only
way any simulated model learns a scene: from the image it is handed.

The scene state (objects, setting, style, texture seed, flaws) is compressed and stored in the least
significant bit of the first pixels' channels (a change of at most 1 per value: invisible to the
low-level check and to a person), behind a magic word, a length and a CRC. It survives lossless
transport (PNG, lossless WebP, the object store) and nothing else: an image that was not made by
the simulation (a photo), or was re-encoded lossily or resized, reads as untagged, and the simulated
models then judge it on its pixels alone."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"NHRsim1"
_HEAD = len(MAGIC) + 4  # magic, payload length


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


def write(img: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """A copy of `img` carrying `state` (JSON-able) in its pixels."""
    payload = zlib.compress(json.dumps(state, sort_keys=True, separators=(",", ":")).encode(), 9)
    data = MAGIC + struct.pack(">I", len(payload)) + payload + struct.pack(">I", zlib.crc32(payload))
    bits = _bits(data)
    flat = np.ascontiguousarray(img).reshape(-1).copy()
    if bits.size > flat.size:
        raise ValueError(f"image of {img.shape} too small for a {len(data)}-byte tag")
    flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
    return flat.reshape(img.shape)


def _read_bytes(flat: np.ndarray, start: int, n: int) -> bytes | None:
    end = (start + n) * 8
    if end > flat.size:
        return None
    return np.packbits(flat[start * 8 : end] & 1).tobytes()


def read(img: np.ndarray | None) -> dict[str, Any] | None:
    """The state an image carries, or None (not made by the simulation, or damaged)."""
    if img is None or img.dtype != np.uint8 or img.size < _HEAD * 8:
        return None
    flat = np.ascontiguousarray(img).reshape(-1)
    head = _read_bytes(flat, 0, _HEAD)
    if head is None or head[: len(MAGIC)] != MAGIC:
        return None
    (n,) = struct.unpack(">I", head[len(MAGIC) :])
    rest = _read_bytes(flat, _HEAD, n + 4)
    if rest is None:
        return None
    payload, (crc,) = rest[:n], struct.unpack(">I", rest[n:])
    if zlib.crc32(payload) != crc:
        return None
    try:
        return json.loads(zlib.decompress(payload))
    except (zlib.error, ValueError):
        return None
