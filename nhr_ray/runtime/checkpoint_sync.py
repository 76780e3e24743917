"""The scheduler's checkpoint, wherever the output is.

The scheduler actor (pinned to the driver's node) writes its checkpoint atomically to a local file:
for a local --out that file is <out>/state/scheduler.npz itself; for a remote one (s3://, gs://) it
is a local copy, fetched from <out>/state/scheduler.npz when a run resumes, and every new version is
copied back by the driver (`sync`, cheap when nothing changed). A copy that lags the local file is
still a checkpoint: a resumed run reconciles any checkpoint with the Parquet record.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from nhr_ray.io.store import Store

REL = "state/scheduler.npz"


class CheckpointSync:
    def __init__(self, store: Store):
        self.store = store
        self.tmp: str | None = None
        self.seen: tuple[int, int] | None = None
        if store.local:
            self.path = store.path(REL)
            return
        self.tmp = tempfile.mkdtemp(prefix="nhr-scheduler-")
        self.path = os.path.join(self.tmp, "scheduler.npz")
        if store.exists(REL):
            with store.fs.open_input_stream(store.path(REL)) as f, open(self.path, "wb") as out:
                out.write(f.read())
            self.seen = self._version()

    def _version(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def sync(self) -> bool:
        """Copy a new local version to the store; True when one was copied."""
        if self.tmp is None:
            return False
        v = self._version()
        if v is None or v == self.seen:
            return False
        with open(self.path, "rb") as f:  # the actor replaces the file whole (os.replace): one version
            data = f.read()
        self.store.write_bytes(REL, data)
        self.seen = v
        return True

    def close(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
