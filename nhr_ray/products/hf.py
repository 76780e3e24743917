"""Writing Parquet that the Hugging Face `datasets` library reads with the right features: the
`huggingface` schema metadata declares image columns as `Image`, so they decode to PIL images, and
rows go to one rolling writer per subset (`--split-by category` gives one subset per edit type)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nhr_ray.io.shards import IMAGE

_SCALARS = {pa.string(): "string", pa.large_string(): "string", pa.float64(): "float64", pa.float32(): "float32",
            pa.int64(): "int64", pa.int32(): "int32", pa.bool_(): "bool"}  # fmt: skip


def _feature(t: pa.DataType) -> dict[str, Any]:
    if t == IMAGE:
        return {"_type": "Image"}
    if t in _SCALARS:
        return {"dtype": _SCALARS[t], "_type": "Value"}
    if pa.types.is_list(t):
        return {"feature": _feature(t.value_type), "_type": "Sequence"}
    raise TypeError(f"no datasets feature for arrow type {t}")


def with_hf_features(schema: pa.Schema) -> pa.Schema:
    """The schema plus `huggingface` metadata: image structs become `Image` features."""
    features = {f.name: _feature(f.type) for f in schema}
    return schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})


def subset_name(value: str | None) -> str:
    """A folder- and config-safe name for a subset (an edit category)."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", (value or "unknown").strip()).strip("_")
    return s or "unknown"


class SubsetWriter:
    """Rows -> `<out>/<subset>/train-NNNNN.parquet`, rolling to a new file every `rows_per_file`."""

    def __init__(self, out: Path, schema: pa.Schema, rows_per_file: int = 1000):
        self.out, self.schema, self.rows_per_file = Path(out), with_hf_features(schema), rows_per_file
        self.buffers: dict[str, list[dict]] = {}
        self.files: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def write(self, subset: str, rows: list[dict]) -> None:
        buf = self.buffers.setdefault(subset, [])
        buf.extend(rows)
        self.counts[subset] = self.counts.get(subset, 0) + len(rows)
        while len(buf) >= self.rows_per_file:
            self._flush(subset, buf[: self.rows_per_file])
            del buf[: self.rows_per_file]

    def close(self) -> dict[str, int]:
        for subset, buf in self.buffers.items():
            if buf:
                self._flush(subset, buf)
        self.buffers = {}
        return dict(self.counts)

    def _flush(self, subset: str, rows: list[dict]) -> None:
        n = self.files.get(subset, 0)
        d = self.out / subset
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".train-{n:05d}.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), tmp, compression="zstd")
        tmp.replace(d / f"train-{n:05d}.parquet")
        self.files[subset] = n + 1


def card_header(subsets: list[str], pretty_name: str) -> str:
    """The YAML front matter of a dataset card: one config per subset (the first is the default)."""
    lines = ["---", f"pretty_name: {pretty_name}", "task_categories:", "- image-to-image", "configs:"]
    for i, s in enumerate(subsets):
        lines += [f"- config_name: {s}", "  data_files:", "  - split: train", f"    path: {s}/train-*.parquet"]
        if i == 0:
            lines.append("  default: true")
    return "\n".join(lines + ["---", ""])
