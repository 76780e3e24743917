"""Stage 2 with real photos instead of the T2I model (`sources.kind: images`).

Where photos come from (`sources.images`):
  - a folder of image files with a `captions.jsonl` beside them, one line per photo:
    {"file": "a.jpg", "caption": "...", "instructions": ["..."], "categories": ["removal"]};
  - a Parquet file, or a folder of Parquet files (an HF-style dataset, e.g. data/train-*.parquet), with
    columns image ({bytes, path} or binary), caption, instructions (list of strings)[, categories].

Decided: a photo's edit instructions come with it (in captions.jsonl or the `instructions` column),
written by whoever captioned the photos, and the caption plays the scene prompt's part for the
plausibility gate (empty when absent). A photo without instructions is dropped as
`no_instructions`; a designer call per caption is not made here (it needs the designer pool in the
source path and is left as follow-up work).

Every photo gets a counted outcome: decoded with nhr_ray.io.images.decode and the run's pixel
limit, so a file larger than the limit (including decompression bombs, refused from the header
before any pixel is decoded) is `too_large`, a cut-off file `truncated`, anything else
`not_an_image`; CMYK, palette and alpha images are converted to RGB and counted in the stage's
notes (`converted_from_cmyk`, ...). The driver holds only (index, reference) tasks: the bytes are
read inside the actor.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
from PIL import Image

from nhr_ray.io.images import ImageRejected, decode
from nhr_ray.records import Instruction, Scene, Source, Verdict, source_id
from nhr_ray.stages.base import Stage, Tally

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def _scene(index: int, caption: str | None, instructions, categories) -> Scene:
    insts = [str(t) for t in (instructions or []) if t]
    cats = list(categories or [])
    return Scene(f"P{index:06d}", caption or "",
                 [Instruction(i, t, str(cats[i]) if i < len(cats) and cats[i] else "photo") for i, t in enumerate(insts)])  # fmt: skip


def photo_tasks(path: str) -> Iterator[tuple[Scene, dict[str, Any]]]:
    """(scene, reference to the photo's bytes) per photo, in a stable order."""
    p = Path(path)
    if p.is_file():
        yield from _parquet_tasks([p])
        return
    if not p.is_dir():
        raise FileNotFoundError(f"sources.images: {path} is neither a folder nor a Parquet file")
    parquet = sorted(f for f in p.rglob("*.parquet") if not f.name.startswith("."))
    if parquet and not (p / "captions.jsonl").exists():
        yield from _parquet_tasks(parquet)
        return
    meta = {}
    if (p / "captions.jsonl").exists():
        for line in (p / "captions.jsonl").read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                meta[d["file"]] = d
    files = sorted(f for f in p.iterdir() if f.is_file() and f.name != "captions.jsonl" and not f.name.startswith("."))
    for n, f in enumerate(files):
        d = meta.get(f.name, {})
        yield _scene(n, d.get("caption"), d.get("instructions"), d.get("categories")), {"file": str(f)}


def _parquet_tasks(files: list[Path]) -> Iterator[tuple[Scene, dict[str, Any]]]:
    n = 0
    for f in files:
        m = pq.ParquetFile(f)
        cols = [c for c in ("caption", "instructions", "categories") if c in m.schema_arrow.names]
        for g in range(m.metadata.num_row_groups):
            for k, r in enumerate(m.read_row_group(g, columns=cols).to_pylist()):
                yield _scene(n, r.get("caption"), r.get("instructions"), r.get("categories")), {"parquet": str(f), "group": g, "row": k}
                n += 1


def read_bytes(ref: dict[str, Any]) -> bytes | None:
    if "file" in ref:
        return Path(ref["file"]).read_bytes()
    t = pq.ParquetFile(ref["parquet"]).read_row_group(ref["group"], columns=["image"])
    v = t.column("image")[ref["row"]].as_py()
    return v.get("bytes") if isinstance(v, dict) else v


def _mode(data: bytes) -> str | None:
    try:
        return Image.open(io.BytesIO(data)).mode
    except Exception:
        return None


class PhotoSourceStage(Stage):
    """Runs on the t2i pool's actors in place of SourceStage when sources.kind == images."""

    name = "sources"
    role = None

    def process(self, tasks: list[tuple[Scene, dict[str, Any]]]) -> tuple[list[Source], Tally, float]:
        tally, out = Tally(self.name), []
        for scene, ref in tasks:
            sid = source_id(scene.scene_id, 0)
            src = Source(sid, scene.scene_id, scene.prompt, 0, 0, 0, None, instructions=scene.instructions)
            try:
                data = read_bytes(ref)
                mode = _mode(data) if data else None
                img = decode(data or b"", self.config.output.max_image_pixels)
            except ImageRejected as e:
                v = Verdict(self.name, False, str(e))
            except OSError as e:
                v = Verdict(self.name, False, "unreadable", raw=str(e)[:200], failed=True)
            else:
                src.image, src.height, src.width = img, img.shape[0], img.shape[1]
                if mode and mode != "RGB":
                    tally.notes[f"converted_from_{mode.lower().replace(';', '')}"] += 1
                v = Verdict(self.name, True, "ok") if scene.instructions else Verdict(self.name, False, "no_instructions")
            src.gate = v if not v.keep else None
            tally.add(v)
            out.append(src)
        return out, tally, 0.0
