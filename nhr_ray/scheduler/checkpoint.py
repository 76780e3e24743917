"""Atomic, pickle-free checkpoints of the scheduler: one .npz (plain arrays, no object arrays) whose
`header` member is UTF-8 JSON. Written to a temporary file in the same folder, fsynced, then
os.replace'd over the old one, so a crash leaves either the old or the new checkpoint, never half.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = "nhr-ray/scheduler-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that must not be used (or overwritten). The message says why."""


def write(path: str | Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"magic": MAGIC, "version": VERSION, **header}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the name a resumed run cleans up
    try:
        with open(tmp, "wb") as f:
            np.savez(f, header=np.frombuffer(json.dumps(head).encode(), np.uint8), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header(path: str | Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            head = json.loads(bytes(z["header"]).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable scheduler checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(head, dict) or head.get("magic") != MAGIC:
        raise CheckpointError(f"{path}: not a scheduler checkpoint (wrong magic)")
    if head.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {head.get('version')}, this code reads {VERSION}")
    return head


def check(head: dict[str, Any], expect: dict[str, Any], path: str | Path) -> None:
    for key, want in expect.items():
        if head.get(key) != want:
            raise CheckpointError(f"{path}: belongs to another run ({key} is {head.get(key)!r}, this run has {want!r})")


def read(path: str | Path, expect: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    head = read_header(path)
    check(head, expect, path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "header"}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: corrupted checkpoint ({type(e).__name__}: {e})") from None
    return head, arrays
