"""The output rows: schemas derived from the row records are the columns and types written so far
(pinned here), and every row a record gives has exactly its schema's columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from nhr_ray.io.rows import ATTEMPTS_SCHEMA, SOURCES_SCHEMA, TRIPLETS_SCHEMA, AttemptRow, SourceRow, TripletRow
from nhr_ray.records import Attempt, Instruction, Job, Source, Verdict

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
S, I32, I64, F64, B = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()

# the schemas as io/shards.py spelled them by hand before they were derived (issue 16): a change here
# changes every reader of a run's folder (export, report, calibrate, score, curriculum, resume).
# No column carries the simulation's truth (issue 17): sim_truth and sim_outcome are gone.
PINNED = {
    "sources": pa.schema([
        ("source_id", S), ("scene_id", S), ("prompt", S), ("style", S), ("source_seed", I64), ("img_width", I32),
        ("img_height", I32), ("instructions", pa.list_(S)), ("categories", pa.list_(S)), ("image", IMAGE),
        ("verdict_stage", S), ("gate_keep", B), ("gate_outcome", S), ("gate_reason", S), ("gate_raw", S),
        ("gpu_seconds", F64),
    ]),
    "attempts": pa.schema([
        ("attempt_id", S), ("pair_id", S), ("source_id", S), ("instruction_index", I32), ("attempt_index", I32),
        ("edit_seed", I64), ("edit_instruction", S), ("category", S), ("img_width", I32), ("img_height", I32),
        ("final_stage", S), ("final_outcome", S), ("final_reason", S), ("kept", B),
        *[(f"{st}_{x}", S) for st in ("edit", "prefilter", "lowlevel", "validation") for x in ("outcome", "reason", "raw")],
        ("prefilter_adherence", F64), ("prefilter_aesthetics", F64), ("adherence", F64), ("aesthetics", F64),
        ("score", F64),
        # each of the validator's judges on the attempt (issue 19: one judge, or an ensemble's)
        ("validation_judges", pa.list_(pa.struct([("judge", S), ("adherence", F64), ("aesthetics", F64), ("outcome", S),
                                                  ("reason", S)]))),
        ("changed_pixels", I64), ("largest_component_share", F64), ("gpu_seconds", F64),
        ("edit_meta", S), ("edited_image", IMAGE), ("api_usage", S),
    ]),
    "triplets": pa.schema([
        ("sample_id", S), ("kind", S), ("source_image", IMAGE), ("edited_image", IMAGE), ("edit_instruction", S),
        ("category", S), ("style", S), ("img_width", I32), ("img_height", I32), ("adherence", F64),
        ("aesthetics", F64), ("score", F64), ("prompt", S), ("source_seed", I64), ("edit_seed", I64),
        ("parents", pa.list_(S)), ("lineage", S), ("source_id", S), ("attempt_id", S),
        # where the scores come from (issue 18): judged by which stage, or inherited from which rows
        ("score_source", S), ("scored_by", S), ("scores_from", pa.list_(S)),
    ]),
}  # fmt: skip


@pytest.mark.parametrize("record, schema", [(SourceRow, SOURCES_SCHEMA), (AttemptRow, ATTEMPTS_SCHEMA), (TripletRow, TRIPLETS_SCHEMA)])
def test_derived_schemas_are_the_pinned_ones(record, schema):
    pinned = PINNED[record.prefix]
    assert record.schema() is not schema and record.schema().equals(pinned, check_metadata=True)
    assert schema.equals(pinned)


def _source() -> Source:
    img = np.zeros((16, 24, 3), np.uint8)
    ins = [Instruction(0, "remove the cup", "removal"), Instruction(1, "make it red", "colour_change")]
    return Source("s.n00", "s", "a cup", 7, 24, 16, img, "photo", ins, Verdict("gate", True, "ok", "yes"), 1.5)


def _attempt() -> Attempt:
    job = Job("s.n00.i0.m1", "s.n00.i0", "s.n00", 0, 1, 99)
    verdicts = [Verdict("edit", True, "ok"), Verdict("prefilter", True, "ok", "{}", 4.5, 4.6),
                Verdict("lowlevel", True, "ok"), Verdict("validation", True, "ok", "{...}", 4.8, 4.9)]  # fmt: skip
    return Attempt(job, Instruction(0, "remove the cup", "removal"), 24, 16, np.ones((16, 24, 3), np.uint8), verdicts,
                   {"editor": 2.0, "prefilter": 1.0}, {"steps": 20}, {"changed_pixels": 12, "largest_share": 0.5},
                   {"usd": 0.01})  # fmt: skip


def test_rows_have_exactly_the_schema_columns_and_write():
    src = SourceRow.of(_source(), "png").to_row()
    att = AttemptRow.of(_attempt(), "png", "validated").to_row()
    assert list(src) == SOURCES_SCHEMA.names and list(att) == ATTEMPTS_SCHEMA.names
    pa.Table.from_pylist([src], schema=SOURCES_SCHEMA)
    pa.Table.from_pylist([att], schema=ATTEMPTS_SCHEMA)
    assert src["gate_outcome"] == "kept" and src["instructions"] == ["remove the cup", "make it red"]
    assert att["kept"] is True and att["validation_raw"] == "{...}" and att["prefilter_adherence"] == 4.5
    assert att["score"] == pytest.approx((4.8 * 4.9) ** 0.5) and att["gpu_seconds"] == 3.0
    assert att["edited_image"]["path"] == "s.n00.i0.m1.png" and att["changed_pixels"] == 12


def test_a_triplet_row_is_its_columns_without_working_fields_and_refuses_unknown_ones():
    t = TripletRow(**{n: None for n in TRIPLETS_SCHEMA.names})
    assert list(t.to_row()) == TRIPLETS_SCHEMA.names and "sim_truth" not in TRIPLETS_SCHEMA.names
    assert TRIPLETS_SCHEMA.names[-3:] == ["score_source", "scored_by", "scores_from"]
    with pytest.raises(TypeError, match="mask"):
        TripletRow(**{n: None for n in TRIPLETS_SCHEMA.names}, mask=None)
    with pytest.raises(KeyError, match="are not columns"):
        AttemptRow(**{**AttemptRow.of(_attempt(), "png", "none").__dict__, "verdicts": {"gate_outcome": "x"}}).to_row()


def test_an_attempts_shard_of_an_older_release_reads_under_todays_stage_names(tmp_path):
    """Before the stage table named every stage once, the validation stage's columns were validate_*
    and its final_stage value `validate`: both readers of attempts shards (resume's iter_rows and the
    products' Run.batches) read such a file as if written today."""
    import pyarrow.parquet as pq

    from nhr_ray.io.shards import iter_rows
    from nhr_ray.io.store import Store
    from nhr_ray.products.export import Run

    row = AttemptRow.of(_attempt(), "png", "validated").to_row()
    old = {k.replace("validation_", "validate_"): v for k, v in row.items()} | {"final_stage": "validate"}
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist([old]), tmp_path / "data" / "attempts-00000.parquet")
    cols = ["attempt_id", "final_stage", "validation_outcome", "validation_raw"]
    want = {"attempt_id": "s.n00.i0.m1", "final_stage": "validation", "validation_outcome": "kept", "validation_raw": "{...}"}
    assert list(iter_rows(Store(str(tmp_path)), "attempts", cols)) == [want]
    assert [r for b in Run(tmp_path).batches("attempts", cols) for r in b.to_pylist()] == [want]
    whole = next(iter_rows(Store(str(tmp_path)), "attempts"))
    assert whole["validation_reason"] == "ok" and "validate_reason" not in whole
    new = tmp_path / "new"
    (new / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=ATTEMPTS_SCHEMA), new / "data" / "attempts-00000.parquet")
    assert list(iter_rows(Store(str(new)), "attempts", cols)) == [want]  # today's files as they are
