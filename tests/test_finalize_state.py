"""Finalize's durable state: the switch from the published triplet shards to a new set survives a
crash at every step; published choices stay pinned; recorded answers are reused."""

import pyarrow as pa
import pytest

from nhr_ray.io.shards import TRIPLETS_SCHEMA
from nhr_ray.io.store import Store
from nhr_ray.runtime import finalize_state as fs
from nhr_ray.runtime.finalize import _compose
from nhr_ray.runtime.funnel import Funnel
from triplet_rows import triplet


def _shard(store, rel, ids, kind="forward"):
    rows = [{"sample_id": i, "kind": kind, "attempt_id": f"S{i}.n00.i0.m0", "source_id": f"S{i}.n00", "lineage": i} for i in ids]
    store.write_table(rel, pa.Table.from_pylist(rows, schema=TRIPLETS_SCHEMA))


def _published_ids(store):
    return sorted(r["sample_id"] for p in store.glob("data", "triplets-") for r in store.read_table(p, ["sample_id"]).to_pylist())


class Crash(Exception):
    pass


def _crashing(store, after: int):
    """The store's moves and deletes raise (a SIGKILL) after `after` of them succeeded."""
    n = {"ops": 0}
    real_move, real_delete = store.move, store.delete

    def step(fn):
        def go(*a):
            if n["ops"] >= after:
                raise Crash
            n["ops"] += 1
            return fn(*a)
        return go

    store.move, store.delete = step(real_move), step(real_delete)
    return store


def _old_and_staged(tmp_path):
    store = Store(str(tmp_path / "out"))
    for k, ids in enumerate([["a", "b"], ["c"], ["d"], ["x"]]):  # published: 4 shards
        _shard(store, f"data/triplets-{k:05d}.parquet", ids)
    store.write_table("data/attempts-00000.parquet", pa.table({"x": [1]}))
    w = fs.start(store, shard_rows=2)
    w.write([{"sample_id": i, "kind": "forward"} for i in ["a", "b", "c", "d", "e"]])  # the new set: 3 shards, no x
    return store, w


@pytest.mark.parametrize("after", range(0, 10))
def test_the_switch_to_new_shards_survives_a_crash_at_every_step(tmp_path, after):
    store, w = _old_and_staged(tmp_path)
    w.close()
    names = [p.rsplit("/", 1)[1] for p in store.glob(fs.STAGING, "triplets-")]
    store.write_json(fs.COMMIT, {"shards": names})
    try:
        fs.recover(_crashing(store, after))  # killed after `after` moves/deletes
    except Crash:
        pass
    store = Store(str(tmp_path / "out"))  # the next run
    fs.recover(store)
    assert _published_ids(store) == ["a", "b", "c", "d", "e"]
    assert not store.glob(fs.STAGING, "", "") and store.glob("data", "attempts-")


def test_a_crash_before_the_commit_keeps_the_published_set(tmp_path):
    store, w = _old_and_staged(tmp_path)
    w.close()  # all staged, no COMMIT.json yet: killed here
    assert fs.recover(Store(str(tmp_path / "out"))) == "rolled_back"
    assert _published_ids(store) == ["a", "b", "c", "d", "x"] and not store.glob(fs.STAGING, "", "")


def test_publish_replaces_the_set_and_leaves_nothing_staged(tmp_path):
    store, w = _old_and_staged(tmp_path)
    fs.publish(store, w)
    assert _published_ids(store) == ["a", "b", "c", "d", "e"]
    assert not store.glob(fs.STAGING, "", "") and not store.glob("data", ".", "")


def test_published_pins_forward_winners_and_capped_compositions(tmp_path):
    class Cfg:
        class composition:
            max_per_source = 2

    store = Store(str(tmp_path / "out"))
    rows = [{"sample_id": "f1", "kind": "forward", "attempt_id": "S.n00.i0.m3", "source_id": "S.n00", "lineage": "S.n00.i0.m3"},
            {"sample_id": "c1", "kind": "composed", "attempt_id": "S.n00.i1.m0", "source_id": "S.n00",
             "lineage": "comp:S.n00.i2.m0|S.n00.i1.m0"}]  # fmt: skip
    store.write_table("data/triplets-00000.parquet", pa.Table.from_pylist(rows, schema=TRIPLETS_SCHEMA))
    forwards, composed = fs.published(store)
    assert forwards == {"S.n00.i0": "S.n00.i0.m3"} and composed == {"S.n00": {"comp:S.n00.i2.m0|S.n00.i1.m0"}}
    fw = [triplet(sample_id=f"s{k}", attempt_id=f"S.n00.i{k}.m0", source_id="S.n00", adherence=5.0, aesthetics=5.0,
                  edit_instruction=f"do {k}", edited_image=None, edit_seed=k) for k in range(3)]  # fmt: skip
    inv = {f.sample_id: f"undo-ish {f.sample_id}" for f in fw}
    kept = {c.lineage for c in _compose(Cfg, fw, inv, composed, 7)}
    # a new forward (i0) sorts first and would take both slots: the published composition keeps one
    assert len(kept) == 2 and "comp:S.n00.i2.m0|S.n00.i1.m0" in kept


def test_recorded_answers_round_trip(tmp_path):
    from nhr_ray.records import Verdict

    store = Store(str(tmp_path / "out"))
    a = fs.Answers(store)
    f = triplet(attempt_id="S.n00.i0.m1", source_id="S.n00")
    a.record("inversion", [(f, "make it blue", Verdict("inversion", True, "ok", "raw"), {"usd": 0.01})])
    a.record("consistency", [(f, None, Verdict("consistency", False, "low_adherence", "r", 3.0, 4.9), {})])
    c = triplet(attempt_id="S.n00.i0.m1", source_id="S.n00", kind="composed", lineage="comp:S.n00.i2.m0|S.n00.i0.m1")
    a.record("rescore", [(c, c.lineage, Verdict("rescore", True, "ok", "r", 4.8, 4.9), {})])
    rows = [r for p in a.paths() for r in store.read_table(p).to_pylist()]
    got = fs.Answers.load(rows)
    assert got[("inversion", "S.n00.i0.m1")][0] == "make it blue" and got[("inversion", "S.n00.i0.m1")][2] == {"usd": 0.01}
    v = got[("consistency", "S.n00.i0.m1")][1]
    assert (v.keep, v.reason, v.adherence, v.failed) == (False, "low_adherence", 3.0, False)
    # a rescore answer is about a composition: found by its lineage, not by its second edit's attempt
    assert got[("rescore", "comp:S.n00.i2.m0|S.n00.i0.m1")][1].adherence == 4.8 and ("rescore", "S.n00.i0.m1") not in got
    assert fs.recorded_usd(store) == pytest.approx(0.01)  # a resumed run's api.max_cost_usd counts it


def test_a_published_winner_stays_the_winner_when_a_better_attempt_of_its_pair_comes(tmp_path):
    """unit: job spreads a pair's attempts over parts: the extended run keeps the published forward."""
    from nhr_ray.runtime.finalize import _winners

    store = Store(str(tmp_path / "out"))
    rows = [{"pair_id": "S.n00.i0", "attempt_id": f"S.n00.i0.m{k}", "source_id": "S.n00", "attempt_index": k,
             "adherence": a, "aesthetics": a, "kept": True} for k, a in [(0, 4.8), (3, 5.0)]]  # fmt: skip
    store.write_table("data/attempts-00000.parquet", pa.Table.from_pylist(rows))
    paths = store.glob("data", "attempts-")
    assert _winners(store, paths, Funnel(), {})["S.n00.i0"]["attempt_id"] == "S.n00.i0.m3"
    f = Funnel()
    assert _winners(store, paths, f, {"S.n00.i0": "S.n00.i0.m0"})["S.n00.i0"]["attempt_id"] == "S.n00.i0.m0"
    assert f.tally("best_of").as_dict()["kept"] == 1
