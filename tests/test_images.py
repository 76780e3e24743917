"""Decoding crafted images: Pillow's process-wide guard stays on, 16-bit greyscale keeps its tones,
EXIF orientation is applied, and bomb-sized headers are refused before any pixel is decoded."""

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import small_config
from nhr_ray.config import ConfigError
from nhr_ray.io.images import ImageRejected, decode, decode_photo


def _bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels, with almost no data behind it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_pillow_guard_is_not_switched_off_for_the_process():
    code = ("import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import nhr_ray.io.images, nhr_ray.stages.photos, "
            "nhr_ray.products.report, nhr_ray.products.export, nhr_ray.runtime.driver; print(before, I.MAX_IMAGE_PIXELS)")  # fmt: skip
    before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert before == after and after != "None"


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")  # a real 16-bit PNG
    img, notes = decode_photo(buf.getvalue())
    want = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert img.shape == (8, 256, 3) and np.array_equal(img[..., 0], want) and np.array_equal(img[..., 2], want)
    assert (img == 255).mean() < 0.01 and notes == [f"converted_from_{Image.open(io.BytesIO(buf.getvalue())).mode.lower().replace(';', '')}"]


def test_exif_orientation_is_applied():
    px = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high; a red block at the top left
    px[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="JPEG", quality=95, exif=exif)
    img, notes = decode_photo(buf.getvalue())
    assert img.shape == (40, 20, 3) and notes == ["exif_rotated"]
    assert np.abs(img.astype(int) - np.rot90(px, k=-1).astype(int)).mean() < 8  # the block is now top right
    assert img[:8, -8:, 0].mean() > 200 and img[:8, :8, 0].mean() < 50


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (10_000, 10_000), (9_000, 8_000)])
def test_bomb_headers_are_too_large(w, h):
    with pytest.raises(ImageRejected, match="too_large"):
        decode(_bomb_png(w, h), max_pixels=64_000_000)


def test_pixel_limit_is_checked_and_bounded_by_pillows():
    with pytest.raises(ImageRejected, match="too_large"):
        decode(_bomb_png(300, 300), max_pixels=80_000)
    with pytest.raises(ConfigError, match="max_image_pixels"):
        small_config(**{"output.max_image_pixels": 200_000_000})
