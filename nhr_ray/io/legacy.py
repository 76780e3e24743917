"""Runs written before every stage had one name (the validation stage was spelled `validate` in its
attempts-table columns and `final_stage` values) read as if written today, for one release: a
resume, an extension, `export`, `report`, `score` or `calibrate` of such a run sees `validation_*`.
Both readers of the attempts shards (io/shards.iter_rows, products/export.Run.batches) go through
here; new files are passed through untouched."""

from __future__ import annotations

import pyarrow as pa

RENAMED_COLUMNS = {f"validate_{p}": f"validation_{p}" for p in ("outcome", "reason", "raw")}
RENAMED_STAGES = {"validate": "validation"}
OLD_OF = {new: old for old, new in RENAMED_COLUMNS.items()}


def file_columns(names: list[str], wanted: list[str] | None) -> list[str] | None:
    """The columns to read from a file whose columns are `names`: a wanted new name the file only
    has under its old spelling is read under that."""
    if wanted is None:
        return None
    have = set(names)
    return [OLD_OF[c] if c not in have and OLD_OF.get(c) in have else c for c in wanted]


def upgrade(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Old column names and stage names under today's spelling (a new file's batch as it is)."""
    names = batch.schema.names
    if not any(n in RENAMED_COLUMNS for n in names):
        return batch
    cols = list(batch.columns)
    if "final_stage" in names:
        i = names.index("final_stage")
        cols[i] = pa.array([RENAMED_STAGES.get(x, x) for x in cols[i].to_pylist()], pa.string())
    return pa.RecordBatch.from_arrays(cols, names=[RENAMED_COLUMNS.get(n, n) for n in names])
