"""The output location: a local directory or a remote URI (s3://, gs://, ...) through pyarrow.fs.

Every file is written complete under a temporary name and then moved into place, so a reader (or a
resumed run) never sees a half-written file under a name it looks at. On object stores a move is a
copy of a complete object followed by a delete, which keeps that guarantee.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


class Store:
    def __init__(self, uri: str, filesystem: pafs.FileSystem | None = None):
        self.uri = str(uri)
        if filesystem is not None:
            self.fs, self.root = filesystem, self.uri.split("://", 1)[-1]
        elif "://" in self.uri:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(self.uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def makedirs(self, rel: str = "") -> None:
        self.fs.create_dir(self.path(rel) if rel else self.root, recursive=True)

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def glob(self, rel_dir: str, prefix: str, suffix: str = ".parquet") -> list[str]:
        """Sorted full paths of complete files `<rel_dir>/<prefix>*<suffix>` (temporaries excluded)."""
        sel = pafs.FileSelector(self.path(rel_dir), allow_not_found=True)
        names = [i.path for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File]
        return sorted(p for p in names if posixpath.basename(p).startswith(prefix) and p.endswith(suffix))

    def _commit(self, tmp: str, final: str) -> None:
        if self.local:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        else:
            self.fs.move(tmp, final)

    def _tmp(self, final: str) -> str:
        d, name = posixpath.split(final)
        return posixpath.join(d, f".{name}.{uuid.uuid4().hex[:8]}.tmp")

    def write_bytes(self, rel: str, data: bytes) -> None:
        final = self.path(rel)
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        tmp = self._tmp(final)
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self._commit(tmp, final)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, default=str).encode())

    def read_json(self, rel: str) -> Any:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return json.loads(f.read().decode())

    def write_table(self, rel: str, table: pa.Table) -> None:
        final = self.path(rel)
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        tmp = self._tmp(final)
        pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
        self._commit(tmp, final)

    def parquet(self, path: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open_input_file(path))

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns, filesystem=self.fs)

    def delete(self, path: str) -> None:
        self.fs.delete_file(path)

    def move(self, rel_src: str, rel_dst: str) -> None:
        """Move a complete file over another name (atomic on a local disk; a copy, then a delete, on
        an object store: the destination is whole either way)."""
        if self.local:
            os.replace(self.path(rel_src), self.path(rel_dst))
        else:
            self.fs.move(self.path(rel_src), self.path(rel_dst))

    def clean_temporaries(self, rel_dir: str) -> int:
        """Remove leftovers of writes that a crash interrupted."""
        sel = pafs.FileSelector(self.path(rel_dir), allow_not_found=True)
        n = 0
        for i in self.fs.get_file_info(sel):
            if i.type == pafs.FileType.File and posixpath.basename(i.path).startswith(".") and i.path.endswith(".tmp"):
                self.fs.delete_file(i.path)
                n += 1
        return n
