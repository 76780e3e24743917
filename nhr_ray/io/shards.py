"""Parquet shards written as results come: rows are buffered and flushed every `rows_per_shard` rows
into `data/<prefix>-<NNNNN>.parquet` of a Store (local or remote). Each shard is written complete
under a temporary name and moved into place, so a crash never leaves a half-written shard under a
name readers look at; a resumed run continues the numbering."""

from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from nhr_ray.io import legacy
from nhr_ray.io.rows import ATTEMPTS_SCHEMA, IMAGE, SOURCES_SCHEMA, TRIPLETS_SCHEMA  # noqa: F401  (derived from the row records)
from nhr_ray.io.store import Store


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
        f = store.parquet(p)
        for batch in f.iter_batches(batch_size=batch_rows, columns=legacy.file_columns(f.schema_arrow.names, columns)):
            yield from legacy.upgrade(batch).to_pylist()  # a run written by an older release reads as today's
