"""Reading small user-supplied tables (ratings, predictions) from Parquet, CSV or JSONL."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


class InputError(ValueError):
    """A user-supplied file that cannot be used; the message says what is wrong and where."""


def read_table(path: str | Path) -> pa.Table:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(p)  # a column with any non-number comes back as text; as_float counts it
        if suffix in (".jsonl", ".json", ".ndjson"):
            import pyarrow.json as pjson

            return pjson.read_json(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{p}: cannot read as {suffix[1:]}: {str(e).splitlines()[0]}") from None
    raise InputError(f"{p}: unknown table format {suffix!r} (use .parquet, .csv or .jsonl)")


def require_columns(table: pa.Table, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; it has {table.column_names}")


def as_float(value) -> float | None:
    """A finite float, or None for anything else (text, empty, NaN, inf, bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None
