"""The items raters see: a seeded sample of a finished run's triplets and, when asked, of its
rejected attempts (attempts with a stored edit that were not kept), so the ratings cover the whole
score range and not only what the validator passed.

Every rater sees the same items in the same order: the seed draws the sample and shuffles it once.
Raters who stop early then leave the tail unrated by everyone instead of spreading single ratings
over all items, so the rated part keeps the 2-4 raters per item that de-biasing needs (SPEC.md
"Validator calibration"); the order itself is random, so no kind or category gathers at the end.

Both images of an item are decoded with the run's size limit (`output.max_image_pixels`) before
the item is taken; an item with a missing or undecodable image is skipped, counted by reason, and
the next one in seeded order takes its place. Checked images are cached as PNG or JPEG files in a
private directory, so the server never reads Parquet or decodes anything while raters wait.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from nhr_ray.io.images import ImageRejected, decode, encode
from nhr_ray.products.export import ExportError, Run, shard_paths
from nhr_ray.products.tables import InputError
from nhr_ray.records import stable_hash

REJECTED = "rejected"  # the `kind` of a rejected attempt (triplets are forward / inverse / composed)
SERVED = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg")}
TRIPLET_COLS = ["sample_id", "kind", "attempt_id", "source_id", "category", "edit_instruction", "source_image",
                "edited_image"]  # fmt: skip
ATTEMPT_COLS = ["attempt_id", "source_id", "category", "edit_instruction", "edited_image"]


class SampleError(InputError):
    """A run that cannot be sampled (not a finished run, bad sample size, nothing to rate)."""


@dataclass(frozen=True)
class Item:
    id: str  # a triplet's sample_id or a rejected attempt's attempt_id: the ratings' `triplet` column
    kind: str  # forward | inverse | composed | rejected
    attempt_id: str | None
    source_id: str | None
    category: str | None
    instruction: str
    images: dict[str, tuple[str, str]] = field(repr=False)  # "source" | "edited" -> (cached file, content type)


@dataclass
class Sample:
    items: list[Item]
    identity: dict[str, Any]  # run_id, run_dir, simulated_roles
    seed: int
    n: int
    include_rejected: float
    skipped: Counter  # candidates passed over, by reason
    shortfall: dict[str, int]  # kind group -> how many fewer than asked (the run had no more)

    def params(self) -> dict[str, Any]:
        """What makes a sample: a ratings file made with other params belongs to another sample."""
        return {"run_id": self.identity["run_id"], "sample_seed": self.seed, "n": self.n,
                "include_rejected": self.include_rejected}  # fmt: skip


def run_identity(run: Run) -> dict[str, Any]:
    """A finished run's identity: a hash of its manifest's start, end and seed (a copied run keeps it)."""
    m = run.manifest
    if not m.get("started") or not m.get("ended"):
        raise SampleError(f"{run.dir} is not a finished run (no manifest.json with its start and end)")
    key = json.dumps({"started": m["started"], "ended": m["ended"], "seed": m.get("seed")}, sort_keys=True)
    roles = (m.get("config") or {}).get("roles") or {}
    sim = sorted(r for r, c in roles.items() if isinstance(c, dict) and c.get("backend") == "sim")
    return {"run_id": hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), "run_dir": str(run.dir),
            "simulated_roles": sim}  # fmt: skip


def open_run(run_dir) -> Run:
    try:
        return Run(run_dir)
    except ExportError as e:
        raise SampleError(str(e)) from None


class _Rows:
    """One table of a run (its shards in order) addressed by a global row number; reads row groups."""

    def __init__(self, files: list[Path]):
        self.files, self.groups, sizes = files, [], []
        for fi, f in enumerate(files):
            meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                self.groups.append((fi, g))
                sizes.append(meta.row_group(g).num_rows)
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def where(self, columns: list[str], mask: Callable[[pa.Table], Any]) -> np.ndarray:
        found = [np.zeros(0, np.int64)]
        for k, (fi, g) in enumerate(self.groups):
            t = pq.ParquetFile(self.files[fi]).read_row_group(g, columns=columns)
            found.append(self.starts[k] + np.flatnonzero(np.asarray(mask(t), dtype=bool)))
        return np.concatenate(found)

    def read(self, rows, columns: list[str], handle: Callable[[int, dict], None], batch_rows: int = 16) -> None:
        """handle(row number, row) for each row asked for. Parquet reads a row group's pages in order, so
        each group holding a wanted row is read up to its last wanted row, `batch_rows` rows at a time
        (images included: memory stays at one batch, not one group)."""
        rows = np.sort(np.asarray(rows, np.int64))
        ks = np.searchsorted(self.starts, rows, side="right") - 1
        for k in np.unique(ks):
            fi, g = self.groups[k]
            want, pos = rows[ks == k] - self.starts[k], 0
            for b in pq.ParquetFile(self.files[fi]).iter_batches(batch_rows, row_groups=[int(g)], columns=columns):
                lo, hi = np.searchsorted(want, [pos, pos + b.num_rows])
                for off in want[lo:hi]:
                    handle(int(off + self.starts[k]), b.slice(int(off - pos), 1).to_pylist()[0])
                pos += b.num_rows
                if hi == len(want):
                    break


class _Cache:
    """Checked images as files: PNG and JPEG kept byte for byte, anything else re-encoded as PNG."""

    def __init__(self, directory: Path, max_pixels: int):
        self.dir, self.max_pixels, self.count = Path(directory), max_pixels, 0
        self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, struct: dict | None, side: str) -> tuple[str, str] | str:
        """-> (file, content type), or the reason the image cannot be shown."""
        if not struct or not struct.get("bytes"):
            return f"{side}_image_missing"
        data = struct["bytes"]
        try:
            px = decode(data, self.max_pixels)
        except ImageRejected as e:
            return f"{side}_image_{e}"
        fmt = Image.open(io.BytesIO(data)).format
        if fmt not in SERVED:
            data, fmt = encode(px, "png"), "PNG"
        ext, ctype = SERVED[fmt]
        self.count += 1
        path = self.dir / f"{self.count:06d}.{ext}"
        path.write_bytes(data)
        return str(path), ctype


def _item(row: dict, kind: str, item_id: str, source: tuple[str, str] | str | None, cache: _Cache) -> Item | str:
    if not isinstance(row.get("edit_instruction"), str) or not row["edit_instruction"].strip():
        return "instruction_missing"
    src = source if source is not None else cache.put(row.get("source_image"), "source")
    if isinstance(src, str):
        return src
    edited = cache.put(row.get("edited_image"), "edited")
    if isinstance(edited, str):
        return edited
    return Item(item_id, kind, row.get("attempt_id"), row.get("source_id"), row.get("category"),
                row["edit_instruction"], {"source": src, "edited": edited})  # fmt: skip


def _take(cands: np.ndarray, want: int, fetch: Callable[[np.ndarray], dict[int, Any]], skipped: Counter) -> list[Item]:
    """The first `want` candidates, in the given order, that `fetch` turns into items."""
    chosen, pos = [], 0
    while len(chosen) < want and pos < len(cands):
        batch = cands[pos : pos + want - len(chosen)]
        pos += len(batch)
        got = fetch(batch)
        for r in batch:
            v = got.get(int(r), "row_unreadable")
            if isinstance(v, Item):
                chosen.append(v)
            else:
                skipped[v] += 1
    return chosen


def _order(n: int, seed: int, purpose: str) -> np.ndarray:
    return np.random.default_rng(stable_hash(seed, "rate", purpose)).permutation(n)


def _triplets(run: Run, want: int, seed: int, cache: _Cache, skipped: Counter) -> list[Item]:
    rows = _Rows(shard_paths(run.data, "triplets"))

    def fetch(batch):
        got: dict[int, Any] = {}
        rows.read(batch, TRIPLET_COLS, lambda r, row: got.__setitem__(r, _item(row, row["kind"], row["sample_id"], None, cache)))
        return got

    return _take(_order(len(rows), seed, "triplets"), want, fetch, skipped)


def _rejected(run: Run, want: int, seed: int, cache: _Cache, skipped: Counter) -> list[Item]:
    rows = _Rows(shard_paths(run.data, "attempts"))
    # not kept, with a stored edit (by default: the validator's rejects; all rejects with output.attempt_images=all)
    # (only the image's path is read here: the nested column leaves the bytes on disk)
    cands = rows.where(["kept", "edited_image.path"], lambda t: pc.and_(pc.invert(pc.fill_null(t["kept"], False)),
                                                                     pc.is_valid(t["edited_image"])))  # fmt: skip
    sources = _Rows(shard_paths(run.data, "sources"))
    by_source: dict[str, tuple[str, str] | str] = {}

    def fetch(batch):
        got: dict[int, dict] = {}
        rows.read(batch, ATTEMPT_COLS, got.__setitem__)
        need = sorted({row["source_id"] for row in got.values()} - set(by_source))
        if need:
            at = sources.where(["source_id"], lambda t: pc.is_in(t["source_id"], pa.array(need, pa.string())))
            sources.read(at, ["source_id", "image"], lambda r, row: by_source.__setitem__(row["source_id"], cache.put(row["image"], "source")))
        return {r: _item(row, REJECTED, row["attempt_id"], by_source.get(row["source_id"], "source_row_missing"), cache)
                for r, row in got.items()}  # fmt: skip

    return _take(cands[_order(len(cands), seed, "rejected")], want, fetch, skipped)


def build_sample(run_dir, n: int, seed: int, include_rejected: float, cache_dir) -> Sample:
    """`n` items of the run: round(n * include_rejected) rejected attempts, the rest triplets."""
    if n < 1:
        raise SampleError(f"--n must be at least 1 (got {n})")
    if not 0.0 <= include_rejected <= 1.0:
        raise SampleError(f"--include-rejected is a fraction of --n in [0, 1] (got {include_rejected})")
    run = open_run(run_dir)
    identity = run_identity(run)
    cache, skipped = _Cache(cache_dir, run.config.output.max_image_pixels), Counter()
    n_rej = round(n * include_rejected)
    groups = {"triplets": (n - n_rej, _triplets), REJECTED: (n_rej, _rejected)}
    items, shortfall = [], {}
    for name, (want, take) in groups.items():
        got = take(run, want, seed, cache, skipped) if want else []
        if len(got) < want:
            shortfall[name] = want - len(got)
        items += got
    if not items:
        raise SampleError(f"{run.dir}: nothing to rate (skipped: {dict(skipped) or 'none'})")
    items = [items[i] for i in _order(len(items), seed, "order")]
    return Sample(items, identity, seed, n, include_rejected, skipped, shortfall)
