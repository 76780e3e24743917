"""`nhr-ray export RUN_DIR --format nhr-edit|dpo|kto|curriculum --out PATH`.

nhr-edit   the triplets in NHR-Edit's layout (sample_id, source_image, edit_instruction, edited_image,
           category, style, img_width, img_height, kind) followed by our score and lineage columns
           (`--drop-extra` leaves them out), Image features declared, plus a dataset card README.md.
dpo        (chosen, rejected) pairs of validator-judged attempts at the same (source, instruction):
           every two attempts whose validator `score` differs by at least `--min-margin`.
kto        every validator-judged attempt, `desirable` when both its scores reach the threshold
           (default: the run's own validation thresholds).
curriculum see nhr_ray.products.curriculum.

Memory: nothing reads a whole run. Triplets stream batch by batch. DPO and KTO rows need a source
image and attempt images that live in different shard sets, so they are joined the way databases
join tables bigger than memory (a grace hash join): one streaming pass splits kept sources and
judged attempts into P temporary partitions by a hash of source_id, then each partition (about 1/P
of the run, P chosen from the shards' size) is joined on its own.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

import cv2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nhr_ray.io import legacy
from nhr_ray.io.images import ImageRejected, decode, image_struct
from nhr_ray.io.shards import IMAGE, TRIPLETS_SCHEMA
from nhr_ray.products.hf import SubsetWriter, card_header, subset_name
from nhr_ray.records import stable_hash
from nhr_ray.stages.lowlevel import changed_mask

FORMATS = ("nhr-edit", "dpo", "kto", "curriculum")
NHR_EDIT_CORE = ["sample_id", "source_image", "edit_instruction", "edited_image", "category", "style", "img_width",
                 "img_height", "kind"]  # fmt: skip
PROVENANCE = ["score_source", "scored_by"]  # counted for the card whether exported or not
ATTEMPT_COLS = ["attempt_id", "pair_id", "source_id", "attempt_index", "edit_instruction", "category", "adherence",
                "aesthetics", "score", "kept", "final_reason", "validation_raw", "edited_image"]  # fmt: skip


def shard_paths(directory: Path, prefix: str) -> list[Path]:
    """A local run's shards of one table (remote stores: copy the run down first)."""
    return sorted(p for p in Path(directory).glob(f"{prefix}-*.parquet") if not p.name.startswith("."))


class ExportError(ValueError):
    """An export that cannot be made (not a run directory, an option that does not apply)."""


class Run:
    """A finished run's directory: its shards, manifest, funnel and effective config."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.data = self.dir / "data"
        if not shard_paths(self.data, "triplets") and not shard_paths(self.data, "attempts"):
            raise ExportError(f"{self.dir} holds no run data (data/triplets-*.parquet, data/attempts-*.parquet)")
        self.manifest = self._json("manifest.json")
        self.funnel = self._json("funnel.json")
        from nhr_ray.config import RunConfig

        self.config = RunConfig.model_validate(self.manifest["config"]) if "config" in self.manifest else RunConfig()

    def _json(self, name: str) -> dict[str, Any]:
        p = self.dir / name
        return json.loads(p.read_text()) if p.exists() else {}

    def batches(self, prefix: str, columns: list[str] | None = None, batch_rows: int = 64) -> Iterator[pa.RecordBatch]:
        """Batches of these columns; a column a shard lacks (written by an older version) is left out."""
        for p in shard_paths(self.data, prefix):
            f = pq.ParquetFile(p)
            names = f.schema_arrow.names
            cols = legacy.file_columns(names, columns)
            have = None if cols is None else [c for c in cols if c in names]
            yield from (legacy.upgrade(b) for b in f.iter_batches(batch_size=batch_rows, columns=have))


def mask_png(source: dict | None, edited: dict | None, threshold: int, max_pixels: int) -> dict | None:
    """The low-level check's changed-pixel mask (255 = changed) as a PNG image struct, or None when
    an image is missing, undecodable or of another size."""
    if not source or not edited:
        return None
    try:
        a, b = decode(source["bytes"], max_pixels), decode(edited["bytes"], max_pixels)
    except ImageRejected:
        return None
    if a.shape != b.shape:
        return None
    ok, buf = cv2.imencode(".png", changed_mask(a, b, threshold) * 255)
    return image_struct(buf.tobytes(), None) if ok else None


# ----- nhr-edit --------------------------------------------------------------------------------


def export_nhr_edit(run: Run, out: Path, split_by: str | None, with_masks: bool, drop_extra: bool) -> dict[str, Any]:
    cols = NHR_EDIT_CORE + ([] if drop_extra else [f.name for f in TRIPLETS_SCHEMA if f.name not in NHR_EDIT_CORE])
    fields = [TRIPLETS_SCHEMA.field(c) for c in cols] + ([pa.field("mask", IMAGE)] if with_masks else [])
    writer = SubsetWriter(out, pa.schema(fields))
    lo, maxpix = run.config.lowlevel.pixel_threshold, run.config.output.max_image_pixels
    kinds, cats, prov, no_mask = Counter(), Counter(), Counter(), 0
    for batch in run.batches("triplets", cols + [c for c in PROVENANCE if c not in cols]):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in batch.to_pylist():
            kinds[r["kind"]] += 1
            prov[(r["kind"], r.get("score_source"), r.get("scored_by"))] += 1
            for c in set(PROVENANCE).difference(cols):
                r.pop(c, None)
            cats[r["category"]] += 1
            if with_masks:
                r["mask"] = mask_png(r["source_image"], r["edited_image"], lo, maxpix)
                no_mask += r["mask"] is None
            groups[subset_name(r["category"]) if split_by else "data"].append(r)
        for s, rows in groups.items():
            writer.write(s, rows)
    provenance = [{"kind": k, "score_source": src, "scored_by": by, "rows": n} for (k, src, by), n in sorted(prov.items(), key=str)]
    return {"subsets": writer.close(), "kinds": dict(kinds), "categories": dict(cats), "provenance": provenance,
            **({"rows_without_mask": no_mask} if with_masks else {})}  # fmt: skip


# ----- dpo / kto: a grace hash join of sources and judged attempts --------------------------------


def _partition(run: Run, tmp: Path, parts: int) -> None:
    """Split kept sources and judged attempts (those with a score and a stored edited image) into
    `parts` files each by hash(source_id), streaming."""
    writers: dict[tuple[str, int], pq.ParquetWriter] = {}

    def put(kind: str, batch: pa.RecordBatch) -> None:
        part = pa.array([stable_hash(s) % parts for s in batch.column("source_id").to_pylist()])
        for p in pc.unique(part).to_pylist():
            sub = batch.filter(pc.equal(part, p))
            w = writers.get((kind, p))
            if w is None:
                w = writers[(kind, p)] = pq.ParquetWriter(tmp / f"{kind}-{p:04d}.parquet", sub.schema)
            w.write_batch(sub)

    for b in run.batches("sources", ["source_id", "image", "gate_keep"]):
        b = b.filter(pc.fill_null(b.column("gate_keep"), False))
        if b.num_rows:
            put("sources", b.select(["source_id", "image"]))
    for b in run.batches("attempts", ATTEMPT_COLS):
        b = b.filter(pc.and_(pc.is_valid(b.column("score")), pc.is_valid(b.column("edited_image"))))
        if b.num_rows:
            put("attempts", b)
    for w in writers.values():
        w.close()


def _joined(run: Run, partition_bytes: int) -> Iterator[tuple[dict[str, dict], dict[str, list[dict]]]]:
    """-> (source image by source_id, judged attempts by pair_id), one hash partition at a time."""
    size = sum(p.stat().st_size for p in shard_paths(run.data, "attempts") + shard_paths(run.data, "sources"))
    parts = max(1, math.ceil(size / partition_bytes))
    tmp = Path(tempfile.mkdtemp(prefix="nhr-export-", dir=run.dir))
    try:
        _partition(run, tmp, parts)
        for p in range(parts):
            sp, ap = tmp / f"sources-{p:04d}.parquet", tmp / f"attempts-{p:04d}.parquet"
            if not ap.exists():
                continue
            images = {r["source_id"]: r["image"] for r in pq.read_table(sp).to_pylist()} if sp.exists() else {}
            pairs: dict[str, list[dict]] = defaultdict(list)
            for r in pq.read_table(ap).to_pylist():
                pairs[r["pair_id"]].append(r)
            yield images, pairs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


DPO_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("source_id", pa.string()), ("edit_instruction", pa.string()), ("category", pa.string()),
    ("source_image", IMAGE), ("chosen_image", IMAGE), ("rejected_image", IMAGE),
    ("chosen_score", pa.float64()), ("rejected_score", pa.float64()), ("margin", pa.float64()),
    ("chosen_adherence", pa.float64()), ("chosen_aesthetics", pa.float64()),
    ("rejected_adherence", pa.float64()), ("rejected_aesthetics", pa.float64()),
    ("chosen_attempt_id", pa.string()), ("rejected_attempt_id", pa.string()),
    ("chosen_kept", pa.bool_()), ("rejected_reason", pa.string()),
])  # fmt: skip

KTO_SCHEMA = pa.schema([
    ("attempt_id", pa.string()), ("pair_id", pa.string()), ("source_id", pa.string()), ("edit_instruction", pa.string()),
    ("category", pa.string()), ("source_image", IMAGE), ("edited_image", IMAGE), ("desirable", pa.bool_()),
    ("adherence", pa.float64()), ("aesthetics", pa.float64()), ("score", pa.float64()), ("kept", pa.bool_()),
    ("final_reason", pa.string()), ("validation_raw", pa.string()),
])  # fmt: skip


def dpo_pairs(attempts: list[dict], min_margin: float) -> list[tuple[dict, dict]]:
    """Every (higher, lower) pair of one (source, instruction)'s judged attempts whose validator
    scores differ by at least min_margin; ties in score are ordered by attempt_id."""
    ranked = sorted(attempts, key=lambda a: (-a["score"], a["attempt_id"]))
    return [(hi, lo) for i, hi in enumerate(ranked) for lo in ranked[i + 1 :] if hi["score"] - lo["score"] >= min_margin]


def export_preferences(run: Run, out: Path, fmt: str, split_by: str | None, with_masks: bool, min_margin: float,
                       threshold: float | None, partition_bytes: int) -> dict[str, Any]:  # fmt: skip
    v = run.config.validation
    t_adh, t_aes = (threshold, threshold) if threshold is not None else (v.min_adherence, v.min_aesthetics)
    schema = DPO_SCHEMA if fmt == "dpo" else KTO_SCHEMA
    masks = ["chosen_mask", "rejected_mask"] if fmt == "dpo" else ["mask"]
    if with_masks:
        schema = pa.schema(list(schema) + [pa.field(m, IMAGE) for m in masks])
    writer = SubsetWriter(out, schema)
    lo, maxpix = run.config.lowlevel.pixel_threshold, run.config.output.max_image_pixels
    stats: Counter = Counter()
    cats: Counter = Counter()
    for images, pairs in _joined(run, partition_bytes):
        for pid, atts in sorted(pairs.items()):
            src = images.get(atts[0]["source_id"])
            if src is None:
                stats["attempts_without_source_image"] += len(atts)
                continue
            stats["pairs_judged"] += 1
            stats["attempts_judged"] += len(atts)
            rows = []
            if fmt == "dpo":
                for hi, lw in dpo_pairs(atts, min_margin):
                    row = {"pair_id": pid, "source_id": hi["source_id"], "edit_instruction": hi["edit_instruction"],
                           "category": hi["category"], "source_image": src, "chosen_image": hi["edited_image"],
                           "rejected_image": lw["edited_image"], "chosen_score": hi["score"], "rejected_score": lw["score"],
                           "margin": hi["score"] - lw["score"], "chosen_adherence": hi["adherence"],
                           "chosen_aesthetics": hi["aesthetics"], "rejected_adherence": lw["adherence"],
                           "rejected_aesthetics": lw["aesthetics"], "chosen_attempt_id": hi["attempt_id"],
                           "rejected_attempt_id": lw["attempt_id"], "chosen_kept": hi["kept"], "rejected_reason": lw["final_reason"]}  # fmt: skip
                    if with_masks:
                        row["chosen_mask"] = mask_png(src, hi["edited_image"], lo, maxpix)
                        row["rejected_mask"] = mask_png(src, lw["edited_image"], lo, maxpix)
                    rows.append(row)
            else:
                for a in sorted(atts, key=lambda a: a["attempt_id"]):
                    row = {k: a[k] for k in KTO_SCHEMA.names if k in a}
                    row["source_image"] = src
                    row["desirable"] = a["adherence"] is not None and a["aesthetics"] is not None \
                        and a["adherence"] >= t_adh and a["aesthetics"] >= t_aes  # fmt: skip
                    stats["desirable" if row["desirable"] else "undesirable"] += 1
                    if with_masks:
                        row["mask"] = mask_png(src, a["edited_image"], lo, maxpix)
                    rows.append(row)
            by_subset: dict[str, list[dict]] = defaultdict(list)
            for r in rows:
                cats[r["category"]] += 1
                by_subset[subset_name(r["category"]) if split_by else "data"].append(r)
            for s, rs in by_subset.items():
                writer.write(s, rs)
    extra = {"min_margin": min_margin} if fmt == "dpo" else {"threshold_adherence": t_adh, "threshold_aesthetics": t_aes}
    return {"subsets": writer.close(), "categories": dict(cats), **dict(stats), **extra}


# ----- entry point -----------------------------------------------------------------------------


def export(run_dir, fmt: str, out, split_by: str | None = None, with_masks: bool = False, drop_extra: bool = False,
           min_margin: float = 0.5, threshold: float | None = None, partition_bytes: int = 512 << 20) -> dict[str, Any]:  # fmt: skip
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {FORMATS}")
    if split_by not in (None, "category"):
        raise ExportError(f"--split-by {split_by!r}: only 'category' is supported")
    if drop_extra and fmt != "nhr-edit":
        raise ExportError("--drop-extra applies to --format nhr-edit only")
    run, out = Run(run_dir), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "curriculum":
        if split_by or with_masks:
            raise ExportError("--split-by and --with-masks do not apply to --format curriculum")
        from nhr_ray.products.curriculum import export_curriculum

        return export_curriculum(run, out)
    if fmt == "nhr-edit":
        summary = export_nhr_edit(run, out, split_by, with_masks, drop_extra)
    else:
        summary = export_preferences(run, out, fmt, split_by, with_masks, min_margin, threshold, partition_bytes)
    from nhr_ray.products.card import write_card

    write_card(run, out, fmt, summary)
    return summary
