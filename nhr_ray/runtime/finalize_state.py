"""What the final stages keep between runs, so that running them again (after a crash, or over a
larger record when a finished run is extended) never loses a published triplet:

- Answers: every inversion, consistency and composition.rescore answer is recorded
  (state/answers-*.parquet) and reused, so a model is never asked twice about the same triplet and a
  triplet judged once stays judged.
- Published: the triplets the run published last (data/triplets-*) pin their choices: a pair's
  forward winner stays the winner (a later, better attempt of the same pair does not replace it),
  and with `composition.max_per_source` the compositions published stay among those kept.
- Staging: new triplet shards are written under state/finalize/ and replace the published ones only
  once all are complete (a COMMIT.json lists them, then they are moved into data/); a run killed at
  any point leaves either the old set or a committed new set that the next run moves into place.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict

import pyarrow as pa

from nhr_ray.io.rows import TripletRow
from nhr_ray.io.shards import TRIPLETS_SCHEMA, ShardWriter, iter_rows
from nhr_ray.io.store import Store
from nhr_ray.records import Verdict

STAGING = "state/finalize"
COMMIT = f"{STAGING}/COMMIT.json"
STARTED = f"{STAGING}/STARTED.json"

ANSWERS_SCHEMA = pa.schema([
    ("attempt_id", pa.string()), ("source_id", pa.string()), ("stage", pa.string()), ("text", pa.string()),
    ("keep", pa.bool_()), ("reason", pa.string()), ("failed", pa.bool_()), ("raw", pa.string()),
    ("adherence", pa.float64()), ("aesthetics", pa.float64()), ("usage", pa.string()),
])  # fmt: skip


# -- staging and the atomic switch -----------------------------------------------------------------
def recover(store: Store) -> str | None:
    """Finish what a killed finalize left: move a committed set into data/ ('rolled_forward'), or
    drop an uncommitted one ('rolled_back'); None when there was nothing. Idempotent."""
    if store.exists(COMMIT):
        names = store.read_json(COMMIT)["shards"]
        for name in names:
            if store.exists(f"{STAGING}/{name}"):
                store.move(f"{STAGING}/{name}", f"data/{name}")
        for p in store.glob("data", "triplets-"):
            if posixpath.basename(p) not in names:
                store.delete(p)
        store.delete(store.path(COMMIT))
        _clear(store)
        return "rolled_forward"
    if store.glob(STAGING, "", ""):
        _clear(store)
        return "rolled_back"
    return None


def _clear(store: Store) -> None:
    for p in store.glob(STAGING, "", ""):
        store.delete(p)
    store.clean_temporaries(STAGING)


def start(store: Store, shard_rows: int) -> ShardWriter:
    """A fresh staging area (the progress marker STARTED.json first) and a writer for the new shards."""
    recover(store)
    store.write_json(STARTED, {"format": "nhr-ray-finalize/1"})
    return ShardWriter(store, "triplets", TRIPLETS_SCHEMA, shard_rows, directory=STAGING)


def publish(store: Store, writer: ShardWriter) -> None:
    """Commit the staged shards, then move them over the published ones."""
    writer.close()
    names = [posixpath.basename(p) for p in store.glob(STAGING, "triplets-")]
    store.write_json(COMMIT, {"shards": names})
    recover(store)


# -- what the published triplets pin ---------------------------------------------------------------
def published(store: Store) -> tuple[dict[str, str], dict[str, set[str]]]:
    """From data/triplets-*: pair id -> its published forward attempt; source id -> lineages of its
    published compositions."""
    forwards, composed = {}, defaultdict(set)
    for r in iter_rows(store, "triplets", columns=["kind", "attempt_id", "source_id", "lineage"]):
        if r["kind"] == "forward":
            forwards[r["attempt_id"].rpartition(".m")[0]] = r["attempt_id"]
        elif r["kind"] == "composed":
            composed[r["source_id"]].add(r["lineage"])
    return forwards, dict(composed)


# -- recorded model answers ------------------------------------------------------------------------
class Answers:
    """Inversion and consistency answers by forward attempt id, rescore answers by the composition's
    lineage (in `text`; `attempt_id` is its second edit's, which buckets it with its source): read back
    per bucket, new ones recorded as each bucket is done (flushed at once: a crash loses at most the
    bucket in hand)."""

    def __init__(self, store: Store):
        self.store = store
        self.writer = ShardWriter(store, "answers", ANSWERS_SCHEMA, 1 << 62, directory="state")

    def paths(self) -> list[str]:
        return self.store.glob("state", "answers-")

    @staticmethod
    def load(rows: list[dict]) -> dict[tuple[str, str], tuple[str | None, Verdict, dict]]:
        """(stage, attempt id or, for 'rescore', lineage) -> (text, verdict, usage)."""
        out = {}
        for r in rows:
            v = Verdict(r["stage"], r["keep"], r["reason"], r["raw"] or "", r["adherence"], r["aesthetics"], r["failed"])
            key = r["text"] if r["stage"] == "rescore" else r["attempt_id"]
            out[(r["stage"], key)] = (r["text"], v, json.loads(r["usage"]) if r["usage"] else {})
        return out

    def record(self, stage: str, items: list[tuple[TripletRow, str | None, Verdict, dict]]) -> None:
        """items: (triplet, text, verdict, usage)."""
        self.writer.write([
            {"attempt_id": f.attempt_id, "source_id": f.source_id, "stage": stage, "text": text, "keep": v.keep,
             "reason": v.reason, "failed": v.failed, "raw": v.raw, "adherence": v.adherence, "aesthetics": v.aesthetics,
             "usage": json.dumps(u, sort_keys=True) if u else None}
            for f, text, v, u in items
        ])  # fmt: skip
        self.writer.close()


def recorded_usd(store: Store) -> float:
    """What the recorded answers' API calls cost (a resumed run's api.max_cost_usd counts it)."""
    return sum(json.loads(r["usage"]).get("usd", 0.0) for r in iter_rows(store, "answers", ["usage"], directory="state")
               if r["usage"])
