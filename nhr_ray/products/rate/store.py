"""The ratings file: one row per (rater, item) holding that rater's current scores.

Columns: what `nhr-ray calibrate` reads (`triplet`, `rater`, `adherence`, `aesthetics`, `category`)
and what joins a row back to its run: `kind` (forward / inverse / composed, or `rejected` for an
attempt that was not kept), `triplet` (the triplet's `sample_id`, or the rejected attempt's
`attempt_id`), `attempt_id`, `source_id` and `run_id` (the run's identity, see
sample.run_identity), plus `sample_seed`, `position` (the item's place in the sample's order) and
`rated_at`. The sample's parameters are also in the file's schema metadata, so a restart with other
parameters, or against another run, is refused instead of mixing two samples in one file.

Durability: every change rewrites the whole file under a temporary name, fsyncs it, moves it over
the old one (atomic) and fsyncs the directory, all before the server answers. A killed server
leaves the previous complete file or the new one, never a torn one. The file stays small (300 items
x 4 raters = 1,200 rows, a few ms to write), so a rewrite is simpler than an append log that would
still need converting. One server per file: a lock file next to it refuses a second one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nhr_ray.io.store import Store
from nhr_ray.products.rate.sample import Sample
from nhr_ray.products.tables import InputError

META_KEY = b"nhr_ray.rate"
SCHEMA = pa.schema([
    ("triplet", pa.string()), ("kind", pa.string()), ("rater", pa.string()),
    ("adherence", pa.int8()), ("aesthetics", pa.int8()), ("category", pa.string()),
    ("attempt_id", pa.string()), ("source_id", pa.string()), ("run_id", pa.string()),
    ("sample_seed", pa.int64()), ("position", pa.int32()), ("rated_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


class StoreError(InputError):
    """A ratings file this sample must not write into (another run, another sample, not ours)."""


class RatingsStore:
    def __init__(self, path, sample: Sample):
        self.path = Path(path).absolute()
        self.params = sample.params()
        self.run_dir = sample.identity["run_dir"]  # named in the error a later mismatch gives
        self.positions = {it.id: (pos, it) for pos, it in enumerate(sample.items)}
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}  # (rater, item) -> row, in the order written
        self.lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.path.with_name(self.path.name + ".lock"), "w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise StoreError(f"{self.path} is in use by another `nhr-ray rate` server; one server per ratings file") from None
        if self.path.exists():
            self._load()

    def close(self) -> None:
        self._lockfile.close()  # releases the lock

    def _load(self) -> None:
        try:
            pf = pq.ParquetFile(self.path)
            meta = pf.schema_arrow.metadata or {}
        except (pa.ArrowInvalid, OSError):
            raise StoreError(f"{self.path} exists and is not a Parquet file; choose another --out") from None
        if META_KEY not in meta:
            raise StoreError(f"{self.path} exists and is not an nhr-ray ratings file; choose another --out")
        old = json.loads(meta[META_KEY])
        if old.get("run_id") != self.params["run_id"]:
            raise StoreError(f"{self.path} holds ratings of another run (run_id {old.get('run_id')}, "
                             f"{old.get('run_dir', '?')}); this run is {self.params['run_id']}: choose another --out")  # fmt: skip
        diff = {k: old.get(k) for k in ("sample_seed", "n", "include_rejected") if old.get(k) != self.params[k]}
        if diff:
            raise StoreError(f"{self.path} rates another sample of this run ({diff}; now "
                             f"{ {k: self.params[k] for k in diff} }): start with the same values or choose another --out")  # fmt: skip
        for row in pf.read().to_pylist():
            if row["triplet"] not in self.positions:
                raise StoreError(f"{self.path} rates item {row['triplet']!r}, which this sample does not hold; was "
                                 "the run changed after rating began?")  # fmt: skip
            self.rows[(row["rater"], row["triplet"])] = row

    def ratings(self, rater: str) -> dict[str, list[int]]:
        with self.lock:
            return {t: [r["adherence"], r["aesthetics"]] for (j, t), r in self.rows.items() if j == rater}

    def put(self, rater: str, item: str, adherence: int, aesthetics: int) -> int:
        """Record (or replace) a rating durably; -> how many items this rater has rated."""
        pos, it = self.positions[item]
        row = {"triplet": it.id, "kind": it.kind, "rater": rater, "adherence": adherence, "aesthetics": aesthetics,
               "category": it.category, "attempt_id": it.attempt_id, "source_id": it.source_id,
               "run_id": self.params["run_id"], "sample_seed": self.params["sample_seed"], "position": pos,
               "rated_at": dt.datetime.now(dt.timezone.utc)}  # fmt: skip
        with self.lock:
            self.rows.pop((rater, item), None)
            self.rows[(rater, item)] = row
            self._write()
            return sum(j == rater for j, _ in self.rows)

    def remove(self, rater: str, item: str) -> tuple[bool, int]:
        with self.lock:
            removed = self.rows.pop((rater, item), None) is not None
            if removed:
                self._write()
            return removed, sum(j == rater for j, _ in self.rows)

    def _write(self) -> None:
        meta = {META_KEY: json.dumps({**self.params, "run_dir": self.run_dir}).encode()}
        table = pa.Table.from_pylist(list(self.rows.values()), schema=SCHEMA.with_metadata(meta))
        Store(str(self.path.parent)).write_table(self.path.name, table)  # complete file, fsynced, moved into place
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power loss
        finally:
            os.close(fd)
