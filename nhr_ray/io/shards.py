"""Parquet shards written as results come: rows are buffered and flushed every `rows_per_shard` rows
into `<dir>/<prefix>-<NNNNN>.parquet`. A shard is written to a hidden temporary name and renamed when
complete, so a crash never leaves a half-written file under a name readers look at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


class ShardWriter:
    def __init__(self, directory: str | Path, prefix: str, schema: pa.Schema, rows_per_shard: int = 1000):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.rows_per_shard = rows_per_shard
        self.buffer: list[dict[str, Any]] = []
        self.shards = len(list(self.dir.glob(f"{prefix}-*.parquet")))
        self.rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.buffer.extend(rows)
        while len(self.buffer) >= self.rows_per_shard:
            self._flush(self.buffer[: self.rows_per_shard])
            self.buffer = self.buffer[self.rows_per_shard :]

    def close(self) -> None:
        if self.buffer:
            self._flush(self.buffer)
            self.buffer = []

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.schema)
        final = self.dir / f"{self.prefix}-{self.shards:05d}.parquet"
        tmp = self.dir / f".{final.name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.shards += 1
        self.rows += len(rows)


def shard_paths(directory: str | Path, prefix: str) -> list[Path]:
    return sorted(Path(directory).glob(f"{prefix}-*.parquet"))


def iter_rows(directory: str | Path, prefix: str, columns: list[str] | None = None, batch_rows: int = 256) -> Iterator[dict]:
    for p in shard_paths(directory, prefix):
        f = pq.ParquetFile(p)
        for batch in f.iter_batches(batch_size=batch_rows, columns=columns):
            yield from batch.to_pylist()


SOURCES_SCHEMA = pa.schema([
    ("source_id", pa.string()), ("scene_id", pa.string()), ("prompt", pa.string()), ("style", pa.string()),
    ("source_seed", pa.int64()), ("img_width", pa.int32()), ("img_height", pa.int32()),
    ("instructions", pa.list_(pa.string())), ("categories", pa.list_(pa.string())),
    ("image", IMAGE), ("gate_keep", pa.bool_()), ("gate_outcome", pa.string()), ("gate_reason", pa.string()),
    ("gate_raw", pa.string()), ("sim_truth", pa.string()),
])  # fmt: skip

_VERDICT_COLS = []
for _st in ("edit", "prefilter", "lowlevel", "validate"):
    _VERDICT_COLS += [(f"{_st}_outcome", pa.string()), (f"{_st}_reason", pa.string()), (f"{_st}_raw", pa.string())]

ATTEMPTS_SCHEMA = pa.schema([
    ("attempt_id", pa.string()), ("pair_id", pa.string()), ("source_id", pa.string()),
    ("instruction_index", pa.int32()), ("attempt_index", pa.int32()), ("edit_seed", pa.int64()),
    ("edit_instruction", pa.string()), ("category", pa.string()), ("img_width", pa.int32()), ("img_height", pa.int32()),
    ("final_stage", pa.string()), ("final_outcome", pa.string()), ("final_reason", pa.string()), ("kept", pa.bool_()),
    *_VERDICT_COLS,
    ("prefilter_adherence", pa.float64()), ("prefilter_aesthetics", pa.float64()),
    ("adherence", pa.float64()), ("aesthetics", pa.float64()), ("score", pa.float64()),
    ("changed_pixels", pa.int64()), ("largest_component_share", pa.float64()),
    ("gpu_seconds", pa.float64()), ("edit_meta", pa.string()), ("edited_image", IMAGE),
    ("sim_outcome", pa.string()), ("sim_truth", pa.string()),
])  # fmt: skip

TRIPLETS_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("kind", pa.string()), ("source_image", IMAGE), ("edited_image", IMAGE),
    ("edit_instruction", pa.string()), ("category", pa.string()), ("style", pa.string()),
    ("img_width", pa.int32()), ("img_height", pa.int32()), ("adherence", pa.float64()), ("aesthetics", pa.float64()),
    ("score", pa.float64()), ("prompt", pa.string()), ("source_seed", pa.int64()), ("edit_seed", pa.int64()),
    ("parents", pa.list_(pa.string())), ("lineage", pa.string()), ("source_id", pa.string()), ("attempt_id", pa.string()),
])  # fmt: skip
