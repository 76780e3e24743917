"""Source generation pauses while the pinned source images (or the jobs not yet drawn) would pass
their limits, and resumes as jobs finish: with a slow editor (the simulation's real-time mode) the
pinned bytes stay under the limit, no job is lost, and the run mines the same triplets as an
unlimited one; limits smaller than one source cannot deadlock."""

import glob

import pyarrow.parquet as pq
import pytest

from conftest import small_config
from nhr_ray.runtime.admission import SourceAdmission
from nhr_ray.runtime.pipeline import run

LIMIT = 150_000  # about three sources of the simulation's 1/8-scale images (~48 KB each)


def _mine(tmp_path, name, **sets):
    base = {"task.num_scenes": 8, "sources.seeds_per_prompt": 2, "sources.batch_size": 2, "sim.realtime_scale": 0.02}
    out = tmp_path / name
    res = run(small_config(**{**base, **sets}), out)
    att = pq.read_table(glob.glob(str(out / "data" / "attempts-*.parquet")), columns=["attempt_id"]).column(0).to_pylist()
    trip = pq.read_table(glob.glob(str(out / "data" / "triplets-*.parquet")), columns=["sample_id"]).column(0).to_pylist()
    src = pq.read_table(glob.glob(str(out / "data" / "sources-*.parquet")), columns=["gate_keep", "instructions"]).to_pylist()
    funnel = res["funnel"]
    assert all(funnel["balanced"].values())
    jobs = sum(len(s["instructions"]) for s in src if s["gate_keep"]) * 5  # M = 5: every job of every kept source
    assert funnel["stages"]["edit"]["in"] == len(att) == len(set(att)) == jobs
    return res["manifest"]["source_memory"], sorted(att), sorted(trip)


def test_pinned_bytes_stay_under_the_limit_and_nothing_is_lost(ray_local, tmp_path):
    free, att_free, trip_free = _mine(tmp_path, "free", **{"sources.max_pinned_bytes": None, "sources.max_pending_jobs": None})
    assert free["peak_pinned_bytes"] > LIMIT and free["pauses"] == 0  # unlimited, sources race ahead of the editor
    capped, att_capped, trip_capped = _mine(tmp_path, "capped", **{"sources.max_pinned_bytes": LIMIT})
    assert 0 < capped["peak_pinned_bytes"] <= capped["peak_pinned_and_in_flight_bytes"] <= LIMIT
    assert capped["pauses"] >= 1 and capped["max_pinned_bytes"] == LIMIT
    assert att_capped == att_free and trip_capped == trip_free and trip_free
    # limits smaller than one source's image and one source's jobs: one batch at a time, no deadlock
    tiny, att_tiny, trip_tiny = _mine(tmp_path, "tiny", **{"sources.max_pinned_bytes": 1, "sources.max_pending_jobs": 1,
                                                             "sim.realtime_scale": 0})  # fmt: skip
    assert tiny["pauses"] >= 1 and att_tiny == att_free and trip_tiny == trip_free


def _est(batch):
    return 100 * len(batch), 10 * len(batch)


def test_admission_rules():
    a = SourceAdmission(250, 25, _est)
    assert a.allow([1, 2], pinned_bytes=0, pending_jobs=0, edit_work=False)
    r = a.reserve([1, 2], 0)
    assert not a.allow([3], pinned_bytes=0, pending_jobs=0, edit_work=False)  # 200 in flight + 100 > 250
    a.release(r)
    assert not a.allow([3], pinned_bytes=200, pending_jobs=0, edit_work=True)  # wait for the editors to free memory
    assert a.allow([3], pinned_bytes=200, pending_jobs=0, edit_work=False)  # nothing could free it: go
    assert not a.allow([3], pinned_bytes=0, pending_jobs=20, edit_work=True)  # 20 + 10 jobs > 25
    assert a.paused
    assert a.allow([1, 2, 3, 4], pinned_bytes=0, pending_jobs=0, edit_work=False)  # bigger than both limits, idle: go
    assert a.pauses == 2 and a.report()["paused_s"] >= 0 and not a.paused
    unlimited = SourceAdmission(None, None, _est)
    assert unlimited.allow(list(range(1000)), 10**12, 10**9, True)


@pytest.mark.parametrize("pinned, pending, work, ok", [(0, 0, False, True), (300, 5, True, False), (300, 0, False, True)])
def test_a_pause_always_has_a_way_out(pinned, pending, work, ok):
    """Whatever the limits, a batch goes once no job is pending or running and none is in flight."""
    a = SourceAdmission(1, 1, _est)
    assert a.allow([1], pinned_bytes=pinned, pending_jobs=pending, edit_work=work) is ok
