"""Real photos as sources (`sources.kind: images`): every kind of bad file gets a counted outcome and
good photos are mined like rendered ones."""

import io
import json
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import small_config
from nhr_ray.config import ConfigError
from nhr_ray.runtime.pipeline import run
from nhr_ray.stages.photos import PhotoSourceStage, photo_tasks


def _png(im):
    b = io.BytesIO()
    im.save(b, format="PNG")
    return b.getvalue()


def _bomb_png(w=100_000, h=100_000):
    """A valid PNG header claiming w x h pixels (a decompression bomb's first bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _photo(seed, mode="RGB"):
    px = np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    px[20:40, 30:50] = [200, 30, 30]
    im = Image.fromarray(px)
    return im.convert(mode) if mode != "RGB" else im


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    files = {
        "a_rgb.png": _png(_photo(0)),
        "b_palette.png": _png(_photo(1, "P")),
        "c_alpha.png": _png(_photo(2, "RGBA")),
        "e_huge.png": _png(Image.new("RGB", (700, 700), (10, 200, 10))),
        "f_bomb.png": _bomb_png(),
        "g_truncated.png": _png(_photo(4))[:300],
        "h_notes.txt": b"this is not an image",
        "i_noinst.png": _png(_photo(5)),
    }
    cmyk = io.BytesIO()
    _photo(3, "CMYK").save(cmyk, format="JPEG")
    files["d_cmyk.jpg"] = cmyk.getvalue()
    meta = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        if name != "i_noinst.png":
            meta.append({"file": name, "caption": f"a photo {name}", "instructions": ["Remove the red square in the centre.",
                         "Make the red square blue."], "categories": ["removal", "colour_change"]})  # fmt: skip
    (d / "captions.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return d


EXPECTED_DROPS = {"too_large": 2, "truncated": 1, "not_an_image": 1, "no_instructions": 1}


def test_stage_counts_every_file(folder):
    cfg = small_config(**{"sources.kind": "images", "sources.images": str(folder), "output.max_image_pixels": 200_000})
    stage = PhotoSourceStage(cfg)
    stage.setup()
    r = stage.process(list(photo_tasks(str(folder), cfg.task)))
    sources, tally, cost = r.rows, r.tally, r.gpu_seconds["t2i"]
    assert tally.n_in == 9 and tally.kept == 4 and dict(tally.dropped) == EXPECTED_DROPS and tally.balanced()
    assert dict(tally.notes) == {"converted_from_p": 1, "converted_from_rgba": 1, "converted_from_cmyk": 1}
    ok = [s for s in sources if s.gate is None]
    assert all(s.image.shape == (64, 80, 3) and s.image.dtype == np.uint8 for s in ok)
    assert [i.category for i in ok[0].instructions] == ["removal", "colour_change"] and ok[0].prompt.startswith("a photo")


def test_parquet_dataset_source(tmp_path):
    d = tmp_path / "ds" / "data"
    d.mkdir(parents=True)
    rows = [{"image": {"bytes": _png(_photo(i)), "path": None}, "caption": f"c{i}", "instructions": ["Remove the red square."]}
            for i in range(3)] + [{"image": {"bytes": b"junk", "path": None}, "caption": "bad", "instructions": ["x"]}]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), d / "train-00000.parquet", row_group_size=2)
    tasks = list(photo_tasks(str(tmp_path / "ds"), small_config().task))
    assert [t[0].prompt for t in tasks] == ["c0", "c1", "c2", "bad"]
    stage = PhotoSourceStage(small_config())
    r = stage.process(tasks)
    sources, tally = r.rows, r.tally
    assert tally.kept == 3 and dict(tally.dropped) == {"not_an_image": 1}
    assert [s.source_id for s in sources] == ["P000000.n00", "P000001.n00", "P000002.n00", "P000003.n00"]


def test_config_needs_a_path():
    with pytest.raises(ConfigError, match="sources.images"):
        small_config(**{"sources.kind": "images"})


def test_mining_run_on_photos(ray_local, folder, tmp_path):
    cfg = small_config(**{"sources.kind": "images", "sources.images": str(folder), "output.max_image_pixels": 200_000})
    run(cfg, tmp_path / "run")
    funnel = json.loads((tmp_path / "run" / "funnel.json").read_text())
    st = funnel["stages"]
    assert all(funnel["balanced"].values())
    assert st["sources"]["in"] == 9 and st["sources"]["kept"] == 4 and st["sources"]["dropped"] == EXPECTED_DROPS
    assert "design" not in st or st["design"]["in"] == 0
    src = pq.read_table(sorted((tmp_path / "run" / "data").glob("sources-*.parquet"))).to_pylist()
    assert len(src) == 9 and {s["source_id"][:1] for s in src} == {"P"}
    att = pq.read_table(sorted((tmp_path / "run" / "data").glob("attempts-*.parquet")), columns=["source_id"]).to_pylist()
    assert att and st["edit"]["in"] == len(att) == st["gate"]["kept"] * 2 * cfg.edit.attempts_per_instruction
