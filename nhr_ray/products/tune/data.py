"""What a judge is tuned on: rated triplets with their images, de-biased human scores and a split.

Ratings are read and de-biased by `nhr-ray calibrate`'s own code (calibrate.human_scores): every
valid rating feeds the rater biases; rows outside 1-5, non-numeric or without ids are counted there.
The images and the instruction come from the run the ratings were made on (`--run RUN`): a rated id
is a final triplet's `sample_id` (its source and edited image) or an attempt's `attempt_id` (its
edited image, if the run kept it, and its source's image). Without `--run` the ratings file must
carry them itself (`source_image`, `edited_image` as image structs or bytes, `edit_instruction`).
A rated id with no images is counted (`ratings_unknown_triplet`, `missing_image`), never guessed.

The split is by triplet (all ratings of a triplet on one side), seeded, and checked before any model
loads: too few triplets on either side is an error that says how many there are and how many it needs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nhr_ray.io.images import ImageRejected, decode
from nhr_ray.products.calibrate import human_scores
from nhr_ray.products.tables import InputError, read_table, require_columns

MIN_TRAIN, MIN_HOLDOUT = 4, 3  # Spearman's rho needs 3 held-out triplets
MAX_IMAGE_PIXELS = 64_000_000


@dataclass
class Example:
    triplet: str
    instruction: str
    source: bytes  # encoded; decoded on use (a few hundred examples of 1 MP images stay small)
    edited: bytes
    adherence: float  # de-biased human scores
    aesthetics: float
    category: str | None = None

    def images(self, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, np.ndarray]:
        return decode(self.source, max_pixels), decode(self.edited, max_pixels)


def _bytes(value) -> bytes | None:
    data = value.get("bytes") if isinstance(value, dict) else value
    return data if isinstance(data, (bytes, bytearray)) and data else None


def _from_run(run_dir, ids: set[str]) -> dict[str, tuple[str, bytes | None, bytes | None]]:
    """id -> (instruction, source bytes, edited bytes) for the rated ids the run holds."""
    from nhr_ray.products.export import ExportError, Run

    try:
        run = Run(run_dir)
    except ExportError as e:
        raise InputError(str(e)) from None
    want = pa.array(sorted(ids), pa.string())
    found: dict[str, tuple[str, bytes | None, bytes | None]] = {}
    for b in run.batches("triplets", ["sample_id", "edit_instruction", "source_image", "edited_image"], 256):
        for r in b.filter(pc.is_in(b.column("sample_id"), value_set=want)).to_pylist():
            found.setdefault(r["sample_id"], (r["edit_instruction"], _bytes(r["source_image"]), _bytes(r["edited_image"])))
    sources_of: dict[str, list[str]] = {}
    for b in run.batches("attempts", ["attempt_id", "source_id", "edit_instruction", "edited_image"], 256):
        for r in b.filter(pc.is_in(b.column("attempt_id"), value_set=want)).to_pylist():
            if r["attempt_id"] not in found:
                found[r["attempt_id"]] = (r["edit_instruction"], None, _bytes(r["edited_image"]))
                sources_of.setdefault(r["source_id"], []).append(r["attempt_id"])
    if sources_of:
        src_ids = pa.array(sorted(sources_of), pa.string())
        for b in run.batches("sources", ["source_id", "image"], 64):
            for r in b.filter(pc.is_in(b.column("source_id"), value_set=src_ids)).to_pylist():
                for aid in sources_of[r["source_id"]]:
                    text, _, edited = found[aid]
                    found[aid] = (text, _bytes(r["image"]), edited)
    return found


def _from_ratings_file(path) -> dict[str, tuple[str, bytes | None, bytes | None]]:
    table = read_table(path)
    cols = ["triplet", "edit_instruction", "source_image", "edited_image"]
    require_columns(table, cols, f"ratings file {path} (without --run it must carry the images)")
    found: dict[str, tuple[str, bytes | None, bytes | None]] = {}
    for r in table.select(cols).to_pylist():
        if r["triplet"] is not None:
            found.setdefault(str(r["triplet"]), (r["edit_instruction"], _bytes(r["source_image"]), _bytes(r["edited_image"])))
    return found


def load_examples(ratings_path, run_dir=None, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[list[Example], Counter]:
    """Rated triplets with images and de-biased scores, sorted by id, and the counted exclusions."""
    scores, category, excluded = human_scores(ratings_path)
    found = _from_run(run_dir, set(scores)) if run_dir is not None else _from_ratings_file(ratings_path)
    if run_dir is not None and not found:
        raise InputError(f"none of the {len(scores)} rated ids is a triplet or attempt of {run_dir}: "
                         "were the ratings made on another run?")  # fmt: skip
    examples = []
    for t in sorted(scores):
        if t not in found:
            excluded["ratings_unknown_triplet"] += 1
            continue
        text, src, edt = found[t]
        if not isinstance(text, str) or not text.strip():
            excluded["missing_instruction"] += 1
            continue
        if src is None or edt is None:
            excluded["missing_image"] += 1
            continue
        try:
            decode(src, max_pixels), decode(edt, max_pixels)
        except ImageRejected as e:
            excluded[f"image_{e}"] += 1
            continue
        examples.append(Example(t, text, src, edt, *scores[t], category.get(t)))
    return examples, excluded


def split(examples: list[Example], holdout: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held out), by triplet, seeded; an error naming the numbers when either side is too small."""
    if not 0 < holdout < 1:
        raise InputError(f"--holdout must be between 0 and 1, not {holdout}")
    n = len(examples)
    n_held = int(round(n * holdout))
    if n - n_held < MIN_TRAIN or n_held < MIN_HOLDOUT:
        raise InputError(f"{n} usable rated triplets cannot be split with --holdout {holdout}: that leaves {n - n_held} to "
                         f"train on and {n_held} held out, and tuning needs at least {MIN_TRAIN} and {MIN_HOLDOUT} "
                         "(rate more triplets, or change --holdout)")  # fmt: skip
    order = np.random.default_rng(seed).permutation(n)
    held = {int(i) for i in order[:n_held]}
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def check_out_dir(out) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty: choose a new --out (a tuned judge is never overwritten)")
    return out
