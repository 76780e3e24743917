"""The stage table (nhr_ray/stages/table.py) is the pipeline's one description: the lists the runtime,
the funnel and the card use come from it, and a stage put into it (one class, one line) runs in the
attempt chain, counts its rows and shows in the funnel, with nothing else edited."""

import json
import sys

from conftest import small_config

from nhr_ray.records import Verdict
from nhr_ray.stages import table
from nhr_ray.stages.base import Stage, Tally


def test_the_lists_the_runtime_uses_come_from_the_table():
    from nhr_ray.runtime import autosize, cluster

    assert table.model_roles() == ("designer", "t2i", "gate", "editor", "prefilter", "validator", "inverter")
    assert cluster.STREAMING_ROLES == ("designer", "t2i", "gate", "editor", "prefilter", "validator")
    assert (autosize.PLANNED, autosize.FIXED) == (("t2i", "gate", "editor", "prefilter"), ("designer", "validator"))
    assert [s.name for s in table.attempt_stages()] == ["edit", "prefilter", "lowlevel", "validate"]
    assert [s.funnel_row for s in table.funnel_rows()] == [
        "source images", "plausibility gate", "edits", "soft pre-filter", "low-level check", "hard validation",
        "best-of selection", "inversion", "composition", "backward consistency"]  # fmt: skip
    for s in table.STAGES:
        if s.stage is not None:  # every class the table names exists (imported only here, by load())
            assert issubclass(s.load(), Stage) and s.load().name == s.name, s.name


def test_reading_the_table_imports_no_stage_backend_or_ray():
    import subprocess

    code = ("import sys, nhr_ray.stages.table as t; t.STAGES; "
            "print([m for m in sys.modules if m.split('.')[0] in ('ray', 'cv2', 'torch') or m.startswith('nhr_ray.backends')"
            " or m in ('nhr_ray.stages.edit', 'nhr_ray.stages.design')])")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


class PassThroughStage(Stage):
    """Test-only: passes every live attempt on, counting it (a verdict 'kept' for each)."""

    name = "passthrough"
    role = None

    def process(self, attempts, sources):
        tally = Tally(self.name)
        for a in attempts:
            if a.alive:
                a.verdicts.append(Verdict(self.name, True, "ok"))
                tally.add(a.verdicts[-1])
        return attempts, tally


def test_a_stage_added_to_the_table_alone_runs_and_shows_in_the_funnel(ray_local, tmp_path, monkeypatch):
    from ray import cloudpickle

    from nhr_ray.runtime.pipeline import run

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors get the class itself
    spec = table.StageSpec("passthrough", f"{__name__}:PassThroughStage", "passthrough", None, "pass-through (test)",
                           placement="cpu", attempt=True, model="counts rows")  # fmt: skip
    stages = list(table.STAGES)
    stages.insert([s.name for s in stages].index("validate"), spec)  # between the low-level check and the validator
    monkeypatch.setattr(table, "STAGES", tuple(stages))

    cfg = small_config(**{"task.num_scenes": 6, "sources.seeds_per_prompt": 1})
    run(cfg, tmp_path / "run")
    funnel = json.loads((tmp_path / "run" / "funnel.json").read_text())
    rows = {r["stage"]: r for r in funnel["table"]}
    lowlevel, passed = funnel["stages"]["lowlevel"], funnel["stages"]["passthrough"]
    assert lowlevel["kept"] > 0
    assert passed == {"in": lowlevel["kept"], "kept": lowlevel["kept"], "dropped": {}, "failed": {}}
    assert funnel["stages"]["validate"]["in"] == passed["kept"]  # the validator got what it passed on
    assert rows["pass-through (test)"]["count"] == passed["kept"]
    assert rows["pass-through (test)"]["model"] == "counts rows"
    assert [r["stage"] for r in funnel["table"]].index("pass-through (test)") == 5  # in table order
    assert all(funnel["balanced"].values())
