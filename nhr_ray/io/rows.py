"""The output rows: one record type per row of sources-, attempts- and triplets-*.parquet.

Each record declares its columns once, as dataclass fields carrying their Arrow type; the Parquet
schema is derived from that declaration (`Record.schema()`) and `to_row()` gives exactly those
columns, so the writer and the schema cannot drift apart. `SourceRow.of(source)` and
`AttemptRow.of(attempt)` build a row from the records that flow through the stages;
finalize builds `TripletRow`s directly; a `work()` field (none today) would travel
with a record but is not a column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pyarrow as pa

from nhr_ray.io.images import encode, image_struct
from nhr_ray.records import Attempt, Source, geometric_score
from nhr_ray.stages import table

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ATTEMPT_STAGES = tuple(s.name for s in table.attempt_stages())  # each gets <stage>_outcome/_reason/_raw columns
VERDICT_PARTS = ("outcome", "reason", "raw")
# each of the validator's judges on one attempt (one judge, or judging.ensemble's): its own scores and reason
JUDGE_SCORES = pa.list_(pa.struct([("judge", pa.string()), ("adherence", pa.float64()), ("aesthetics", pa.float64()),
                                   ("outcome", pa.string()), ("reason", pa.string())]))  # fmt: skip


def col(arrow: pa.DataType) -> Any:
    """A column of this Arrow type."""
    return field(metadata={"arrow": arrow})


def work(default: Any = None) -> Any:
    """A working field: carried by the record in finalize, neither a column nor in `to_row()`."""
    return field(default=default, metadata={"working": True}, compare=False)


def col_group(columns: list[tuple[str, pa.DataType]]) -> Any:
    """A field holding a dict of several columns, written in this order (missing ones are null)."""
    return field(metadata={"group": tuple(columns)})


class Record:
    """Base of the row records: the schema and the row from the field declarations."""

    prefix: ClassVar[str]  # the shard files' name: data/<prefix>-NNNNN.parquet

    @classmethod
    def columns(cls) -> list[tuple[str, pa.DataType]]:
        out: list[tuple[str, pa.DataType]] = []
        for f in fields(cls):
            if f.metadata.get("working"):
                continue
            out.extend(f.metadata["group"] if "group" in f.metadata else [(f.name, f.metadata["arrow"])])
        return out

    @classmethod
    def schema(cls) -> pa.Schema:
        return pa.schema(cls.columns())

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("working"):
                continue
            if "group" not in f.metadata:
                row[f.name] = value
                continue
            names = [n for n, _ in f.metadata["group"]]
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise KeyError(f"{type(self).__name__}.{f.name}: {unknown} are not columns (declared: {names})")
            row.update({n: value.get(n) for n in names})
        return row


@dataclass
class SourceRow(Record):
    prefix: ClassVar[str] = "sources"

    source_id: str = col(pa.string())
    scene_id: str = col(pa.string())
    prompt: str = col(pa.string())
    style: str = col(pa.string())
    source_seed: int = col(pa.int64())
    img_width: int = col(pa.int32())
    img_height: int = col(pa.int32())
    instructions: list[str] = col(pa.list_(pa.string()))
    categories: list[str] = col(pa.list_(pa.string()))
    image: dict | None = col(IMAGE)
    verdict_stage: str | None = col(pa.string())
    gate_keep: bool | None = col(pa.bool_())
    gate_outcome: str | None = col(pa.string())
    gate_reason: str | None = col(pa.string())
    gate_raw: str | None = col(pa.string())
    gpu_seconds: float = col(pa.float64())

    @classmethod
    def of(cls, s: Source, fmt: str) -> SourceRow:
        g = s.gate
        return cls(
            source_id=s.source_id, scene_id=s.scene_id, prompt=s.prompt, style=s.style, source_seed=s.seed,
            img_width=s.width, img_height=s.height,
            instructions=[i.text for i in s.instructions], categories=[i.category for i in s.instructions],
            image=image_struct(encode(s.image, fmt) if s.image is not None else None, f"{s.source_id}.{fmt}"),
            verdict_stage=g.stage if g else None, gate_keep=bool(g.keep) if g else None,
            gate_outcome=g.outcome if g else None, gate_reason=g.reason if g else None, gate_raw=g.raw if g else None,
            gpu_seconds=s.gpu_seconds,
        )  # fmt: skip


@dataclass
class AttemptRow(Record):
    prefix: ClassVar[str] = "attempts"

    attempt_id: str = col(pa.string())
    pair_id: str = col(pa.string())
    source_id: str = col(pa.string())
    instruction_index: int = col(pa.int32())
    attempt_index: int = col(pa.int32())
    edit_seed: int = col(pa.int64())
    edit_instruction: str = col(pa.string())
    category: str = col(pa.string())
    img_width: int = col(pa.int32())
    img_height: int = col(pa.int32())
    final_stage: str | None = col(pa.string())
    final_outcome: str | None = col(pa.string())
    final_reason: str | None = col(pa.string())
    kept: bool = col(pa.bool_())
    # <stage>_outcome, <stage>_reason, <stage>_raw for each stage an attempt passes through
    verdicts: dict[str, str | None] = col_group([(f"{s}_{p}", pa.string()) for s in ATTEMPT_STAGES for p in VERDICT_PARTS])
    prefilter_adherence: float | None = col(pa.float64())
    prefilter_aesthetics: float | None = col(pa.float64())
    adherence: float | None = col(pa.float64())
    aesthetics: float | None = col(pa.float64())
    score: float | None = col(pa.float64())
    validation_judges: list[dict] | None = col(JUDGE_SCORES)  # adherence/aesthetics above: their combination
    changed_pixels: int | None = col(pa.int64())
    largest_component_share: float | None = col(pa.float64())
    gpu_seconds: float = col(pa.float64())
    edit_meta: str | None = col(pa.string())
    edited_image: dict | None = col(IMAGE)
    api_usage: str | None = col(pa.string())  # JSON: tokens, calls and USD its hosted-model calls cost (resume adds it back)

    @classmethod
    def of(cls, a: Attempt, fmt: str, keep_image: str) -> AttemptRow:
        j, last = a.job, a.last
        verdicts: dict[str, str | None] = {}
        for st in ATTEMPT_STAGES:
            v = next((v for v in a.verdicts if v.stage == st), None)
            verdicts.update({f"{st}_{p}": getattr(v, p) if v else None for p in VERDICT_PARTS})
        pre_adh, pre_aes = a.scores("prefilter")
        adh, aes = a.scores("validation")
        val = next((v for v in a.verdicts if v.stage == "validation"), None)
        want = keep_image == "all" or (keep_image == "validated" and adh is not None)
        return cls(
            attempt_id=j.attempt_id, pair_id=j.pair_id, source_id=j.source_id, instruction_index=j.instruction_index,
            attempt_index=j.attempt_index, edit_seed=j.seed, edit_instruction=a.instruction.text,
            category=a.instruction.category, img_width=a.width, img_height=a.height,
            final_stage=last.stage if last else None, final_outcome=last.outcome if last else None,
            final_reason=last.reason if last else None,
            kept=a.alive and last is not None and last.stage == "validation",
            verdicts=verdicts, prefilter_adherence=pre_adh, prefilter_aesthetics=pre_aes, adherence=adh, aesthetics=aes,
            score=geometric_score(adh, aes) if adh is not None and aes is not None else None,
            validation_judges=val.judges if val is not None else None,
            changed_pixels=a.lowlevel.get("changed_pixels"), largest_component_share=a.lowlevel.get("largest_share"),
            gpu_seconds=float(sum(a.gpu_seconds.values())),
            edit_meta=json.dumps(a.edit_meta, default=str) if a.edit_meta else None,
            edited_image=image_struct(encode(a.edited, fmt), f"{j.attempt_id}.{fmt}") if want and a.edited is not None else None,
            api_usage=json.dumps(a.usage, sort_keys=True) if a.usage else None,
        )  # fmt: skip


@dataclass
class TripletRow(Record):
    prefix: ClassVar[str] = "triplets"

    sample_id: str = col(pa.string())
    kind: str = col(pa.string())  # forward | inverse | composed
    source_image: dict = col(IMAGE)
    edited_image: dict = col(IMAGE)
    edit_instruction: str = col(pa.string())
    category: str = col(pa.string())
    style: str = col(pa.string())
    img_width: int = col(pa.int32())
    img_height: int = col(pa.int32())
    adherence: float | None = col(pa.float64())
    aesthetics: float | None = col(pa.float64())
    score: float | None = col(pa.float64())
    prompt: str = col(pa.string())
    source_seed: int = col(pa.int64())
    edit_seed: int | None = col(pa.int64())
    parents: list[str] = col(pa.list_(pa.string()))
    lineage: str = col(pa.string())
    source_id: str = col(pa.string())
    attempt_id: str | None = col(pa.string())

    # Where the scores come from: 'judged' (`scored_by` the stage whose judge gave them: 'validation' for
    # forward edits and compositions `composition.rescore` sent through the validator, 'consistency'
    # for inverses the backward-consistency stage re-scored) or 'inherited' (not judged itself: copied
    # from the rows `scores_from` names; an inverse its forward's, a composition the lower of its parents').
    score_source: str = col(pa.string())
    scored_by: str | None = col(pa.string())
    scores_from: list[str] = col(pa.list_(pa.string()))


SOURCES_SCHEMA = SourceRow.schema()
ATTEMPTS_SCHEMA = AttemptRow.schema()
TRIPLETS_SCHEMA = TripletRow.schema()
