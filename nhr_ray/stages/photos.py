"""Stage 2 with real photos instead of the T2I model (`sources.kind: images`).

Where photos come from (`sources.images`):
  - a folder of image files with a `captions.jsonl` beside them, one line per photo:
    {"file": "a.jpg", "caption": "...", "instructions": ["..."], "categories": ["removal"]};
  - a Parquet file, or a folder of Parquet files (an HF-style dataset, e.g. data/train-*.parquet), with
    columns image ({bytes, path} or binary), caption, instructions (list of strings)[, categories].

Decided: a photo's edit instructions come with it, written by whoever captioned the photos, and the
caption plays the scene prompt's part for the plausibility gate (empty when absent). They are as
untrusted as a designer's answer and get the designer's rules (design.clean_text and
clean_instructions): one line each (no newline reaches a judge's prompt), at most
task.max_instruction_chars, no duplicates, at most task.max_instructions_per_scene (the rest
counted); a caption longer than task.max_prompt_chars, instructions that are not a list of strings,
or none left, reject the photo with a reason. Categories outside the known set are counted
(`unknown_category`) and the instruction is classified as the designer's are.

Every photo gets a counted outcome. Files: a link that leads out of the folder is refused
(`link_outside_folder`), the size is checked before anything is read (`file_too_large`,
sources.max_photo_bytes), and what is not a regular file is `not_a_file`. Parquet: a batch reads
each row group it needs once. Pixels: decoded with nhr_ray.io.images and the run's pixel limit, so
a file larger than the limit (decompression bombs included, refused from the header) is
`too_large`, a cut-off file `truncated`, anything else `not_an_image`; CMYK, palette, alpha and
16-bit images are converted to 8-bit RGB and EXIF rotations applied, each counted in the notes. A
Parquet or captions file that cannot be read at all stops the run with one line naming it
(PhotoInputError). The driver holds only (scene, reference) tasks: the bytes are read in the actor.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from nhr_ray.categories import KNOWN_CATEGORIES
from nhr_ray.config import ConfigError
from nhr_ray.io.images import ImageRejected, decode_photo
from nhr_ray.records import Instruction, Scene, Source, Verdict, source_id
from nhr_ray.stages.base import Stage, StageResult, Tally
from nhr_ray.parsing import clean_text
from nhr_ray.stages.design import classify_instruction, clean_instructions


class PhotoInputError(ConfigError):
    """A file under sources.images that cannot be read at all; the message is one line naming it."""


class PhotoRejected(ValueError):
    """One photo refused before it is decoded; the message is the reason's name."""


def describe(caption, instructions, categories, task) -> tuple[str, list[Instruction], str | None, Counter]:
    """A photo's caption and instructions under the designer's rules -> (caption, instructions,
    rejection reason or None, notes)."""
    notes: Counter = Counter()
    if caption is not None and not isinstance(caption, str):
        return "", [], "caption_not_text", notes
    caption = clean_text(caption or "")
    if len(caption) > task.max_prompt_chars:
        return "", [], "caption_too_long", notes
    if instructions is None:
        return caption, [], "no_instructions", notes
    if not isinstance(instructions, list):  # a string would be one instruction per character
        return caption, [], "instructions_not_a_list", notes
    if not all(isinstance(t, str) for t in instructions):
        return caption, [], "instructions_not_strings", notes
    if categories is not None and not isinstance(categories, list):
        return caption, [], "categories_not_a_list", notes
    kept = clean_instructions(instructions, task, notes)
    if not kept:
        return caption, [], "no_instructions", notes
    insts = []
    for j, (k, text) in enumerate(kept):
        cat = categories[k] if categories is not None and k < len(categories) else None
        if cat is not None and not (isinstance(cat, str) and cat in KNOWN_CATEGORIES):
            notes["unknown_category"] += 1
            cat = None
        insts.append(Instruction(j, text, cat or classify_instruction(text)))
    return caption, insts, None, notes


def _inside(path: Path | str, root: Path) -> bool:
    """`path`, every link resolved, lies in `root` (itself resolved)."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _task(n: int, described: tuple, ref: dict[str, Any], reject: str | None = None) -> tuple[Scene, dict[str, Any]]:
    caption, insts, why, notes = described
    if reject or why:
        ref["reject"] = reject or why
    if notes:
        ref["notes"] = dict(notes)
    return Scene(f"P{n:06d}", caption, insts), ref


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def photo_tasks(path: str, task) -> Iterator[tuple[Scene, dict[str, Any]]]:
    """(scene, reference to the photo's bytes) per photo, in a stable order; a photo refused from its
    description or its place carries the reason in ref['reject'] (counted by the stage)."""
    p = Path(path)
    if p.is_file():
        yield from _parquet_tasks([p], Path(os.path.realpath(p)).parent, task)
        return
    if not p.is_dir():
        raise PhotoInputError(f"sources.images: {path} is neither a folder nor a Parquet file")
    root = Path(os.path.realpath(p))
    captions = p / "captions.jsonl"
    parquet = sorted(f for f in p.rglob("*.parquet") if not f.name.startswith("."))
    if parquet and not captions.exists():
        yield from _parquet_tasks(parquet, root, task)
        return
    meta = _captions(captions, root, task) if captions.exists() else {}
    # every entry is a photo or a counted refusal (a folder, a FIFO, a device: not_a_file)
    files = sorted(f for f in p.iterdir() if f.name != "captions.jsonl" and not f.name.startswith("."))
    nothing = describe(None, None, None, task)
    for n, f in enumerate(files):
        reject = None if _inside(f, root) else "link_outside_folder"
        yield _task(n, meta.get(f.name, nothing), {"file": str(f), "root": str(root)}, reject)


def _captions(path: Path, root: Path, task) -> dict[str, tuple]:
    """captions.jsonl: file name -> its photo's description. A line that is not a JSON object with a
    "file" name stops the run, naming the file and line."""
    if not _inside(path, root):
        raise PhotoInputError(f"sources.images: {path} links outside the folder; refused")
    meta = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except (ValueError, RecursionError) as e:
                    raise PhotoInputError(f"sources.images: {path}:{n}: not a JSON line ({type(e).__name__})") from None
                if not isinstance(d, dict) or not isinstance(d.get("file"), str):
                    raise PhotoInputError(f'sources.images: {path}:{n}: expected an object with a "file" name')
                meta[d["file"]] = describe(d.get("caption"), d.get("instructions"), d.get("categories"), task)
    except (OSError, UnicodeDecodeError) as e:
        raise PhotoInputError(f"sources.images: {path}: unreadable ({_one_line(e)})") from None
    return meta


def _parquet_tasks(files: list[Path], root: Path, task) -> Iterator[tuple[Scene, dict[str, Any]]]:
    n = 0
    for f in files:
        ref = {"parquet": str(f), "root": str(root)}
        if not _inside(f, root):
            yield _task(n, describe(None, None, None, task), ref, "link_outside_folder")
            n += 1
            continue
        for g, rows in _row_groups(f):
            for k, r in enumerate(rows):
                yield _task(n, describe(r.get("caption"), r.get("instructions"), r.get("categories"), task),
                            {**ref, "group": g, "row": k})  # fmt: skip
                n += 1


def _row_groups(f: Path) -> Iterator[tuple[int, list[dict]]]:
    """(row group, its rows' caption/instructions/categories) of one Parquet file; a file that is
    not readable Parquet, or has no image column, stops the run with one line naming it."""
    try:
        m = pq.ParquetFile(f)
        names = m.schema_arrow.names
        if "image" not in names:
            raise PhotoInputError(f"sources.images: {f}: no 'image' column (has {names[:8]})")
        cols = [c for c in ("caption", "instructions", "categories") if c in names]
        for g in range(m.metadata.num_row_groups):
            yield g, m.read_row_group(g, columns=cols).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as e:
        if isinstance(e, PhotoInputError):
            raise
        raise PhotoInputError(f"sources.images: {f}: not a readable Parquet file ({_one_line(e)})") from None


def read_file(path: Path | str, root: Path, max_bytes: int) -> bytes:
    """A photo file's bytes: refused if its links lead out of `root`, if it is not a regular file, or
    if it is larger than max_bytes (from fstat, before reading)."""
    real = os.path.realpath(path)
    if not Path(real).is_relative_to(root):
        raise PhotoRejected("link_outside_folder")
    # no link may be swapped in after the check; a FIFO must not block the open
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PhotoRejected("not_a_file")
        if st.st_size > max_bytes:
            raise PhotoRejected("file_too_large")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since fstat
        raise PhotoRejected("file_too_large")
    return data


class BatchReader:
    """Reads one batch's photos: files with read_file, and each Parquet row group once, however
    many of the batch's photos it holds."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.groups: dict[tuple[str, int], pa.ChunkedArray] = {}

    def read(self, ref: dict[str, Any]) -> bytes:
        root = Path(ref["root"])
        if "file" in ref:
            return read_file(ref["file"], root, self.max_bytes)
        key = (ref["parquet"], ref["group"])
        if key not in self.groups:
            if not _inside(ref["parquet"], root):
                raise PhotoRejected("link_outside_folder")
            self.groups[key] = pq.ParquetFile(ref["parquet"]).read_row_group(ref["group"], columns=["image"]).column("image")
        v = self.groups[key][ref["row"]].as_py()
        data = v.get("bytes") if isinstance(v, dict) else v
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise PhotoRejected("missing_image")
        if len(data) > self.max_bytes:
            raise PhotoRejected("file_too_large")
        return bytes(data)


class PhotoSourceStage(Stage):
    """Runs on the t2i pool's actors in place of SourceStage when sources.kind == images."""

    name = "sources"
    role = None

    def process(self, tasks: list[tuple[Scene, dict[str, Any]]]) -> StageResult:
        tally, out = Tally(self.name), []
        reader = BatchReader(self.config.sources.max_photo_bytes)
        for scene, ref in tasks:
            sid = source_id(scene.scene_id, 0)
            src = Source(sid, scene.scene_id, scene.prompt, 0, 0, 0, None, instructions=scene.instructions)
            tally.notes.update(ref.get("notes", {}))
            v = self._photo(src, ref, reader, tally.notes)
            src.gate = v if not v.keep else None
            tally.add(v)
            out.append(src)
        return self.result(out, tally, 0.0, role="t2i")  # runs in the t2i pool, on no GPU

    def _photo(self, src: Source, ref: dict[str, Any], reader: BatchReader, notes: Counter) -> Verdict:
        if ref.get("reject"):
            return Verdict(self.name, False, ref["reject"])
        try:
            img, how = decode_photo(reader.read(ref), self.config.output.max_image_pixels)
        except (ImageRejected, PhotoRejected) as e:
            return Verdict(self.name, False, str(e))
        except (OSError, ValueError, pa.ArrowException) as e:  # gone, unreadable, a damaged row group
            where = Path(ref.get("file") or ref["parquet"]).name
            return Verdict(self.name, False, "unreadable", raw=self.redact(f"{where}: {_one_line(e)}"), failed=True)
        src.image, src.height, src.width = img, img.shape[0], img.shape[1]
        notes.update(how)
        return Verdict(self.name, True, "ok")
