"""Parquet shards written as results come: rows are buffered and flushed every `rows_per_shard` rows
into `data/<prefix>-<NNNNN>.parquet` of a Store (local or remote). Each shard is written complete
under a temporary name and moved into place, so a crash never leaves a half-written shard under a
name readers look at; a resumed run continues the numbering."""

from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from nhr_ray.io.store import Store

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


class ShardWriter:
    def __init__(self, store: Store, prefix: str, schema: pa.Schema, rows_per_shard: int = 1000, directory: str = "data"):
        self.store = store
        self.dir = directory
        self.prefix = prefix
        self.schema = schema
        self.rows_per_shard = rows_per_shard
        self.buffer: list[dict[str, Any]] = []
        self.shards = len(store.glob(directory, f"{prefix}-"))
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
        self.store.write_table(f"{self.dir}/{self.prefix}-{self.shards:05d}.parquet", table)
        self.shards += 1
        self.rows += len(rows)


def iter_rows(store: Store, prefix: str, columns: list[str] | None = None, batch_rows: int = 256,
              directory: str = "data") -> Iterator[dict]:
    for p in store.glob(directory, f"{prefix}-"):
        for batch in store.parquet(p).iter_batches(batch_size=batch_rows, columns=columns):
            yield from batch.to_pylist()


SOURCES_SCHEMA = pa.schema([
    ("source_id", pa.string()), ("scene_id", pa.string()), ("prompt", pa.string()), ("style", pa.string()),
    ("source_seed", pa.int64()), ("img_width", pa.int32()), ("img_height", pa.int32()),
    ("instructions", pa.list_(pa.string())), ("categories", pa.list_(pa.string())),
    ("image", IMAGE), ("verdict_stage", pa.string()), ("gate_keep", pa.bool_()), ("gate_outcome", pa.string()),
    ("gate_reason", pa.string()), ("gate_raw", pa.string()), ("gpu_seconds", pa.float64()), ("sim_truth", pa.string()),
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
    ("api_usage", pa.string()),  # JSON: tokens, calls and USD its hosted-model calls cost (resume adds it back)
])  # fmt: skip

TRIPLETS_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("kind", pa.string()), ("source_image", IMAGE), ("edited_image", IMAGE),
    ("edit_instruction", pa.string()), ("category", pa.string()), ("style", pa.string()),
    ("img_width", pa.int32()), ("img_height", pa.int32()), ("adherence", pa.float64()), ("aesthetics", pa.float64()),
    ("score", pa.float64()), ("prompt", pa.string()), ("source_seed", pa.int64()), ("edit_seed", pa.int64()),
    ("parents", pa.list_(pa.string())), ("lineage", pa.string()), ("source_id", pa.string()), ("attempt_id", pa.string()),
])  # fmt: skip
