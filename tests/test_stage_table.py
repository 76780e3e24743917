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
    assert [s.name for s in table.attempt_stages()] == ["edit", "prefilter", "lowlevel", "validation"]
    assert [s.funnel_row for s in table.funnel_rows()] == [
        "source images", "plausibility gate", "edits", "soft pre-filter", "low-level check", "hard validation",
        "best-of selection", "inversion", "composition", "backward consistency"]  # fmt: skip
    from nhr_ray.config.cluster import RolesConfig
    from nhr_ray.roles import ROLE_KINDS

    assert tuple(RolesConfig.model_fields) == table.model_roles()  # the config offers exactly the table's roles
    assert ROLE_KINDS == {"designer": "text", "t2i": "t2i", "gate": "vlm", "editor": "editor", "prefilter": "vlm",
                          "validator": "vlm", "inverter": "text"}  # fmt: skip
    for s in table.STAGES:
        assert s.kind is None or ROLE_KINDS[s.role] == s.kind, s.name  # a role serving two stages has one kind
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
        return self.result(attempts, tally)


def test_a_stage_added_to_the_table_alone_runs_and_shows_in_the_funnel(ray_local, tmp_path, monkeypatch):
    from ray import cloudpickle

    from nhr_ray.runtime.pipeline import run

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors get the class itself
    spec = table.StageSpec("passthrough", f"{__name__}:PassThroughStage", "passthrough", None, "pass-through (test)",
                           placement="cpu", attempt=True, model="counts rows")  # fmt: skip
    stages = list(table.STAGES)
    stages.insert([s.name for s in stages].index("validation"), spec)  # between the low-level check and the validator
    monkeypatch.setattr(table, "STAGES", tuple(stages))

    cfg = small_config(**{"task.num_scenes": 6, "sources.seeds_per_prompt": 1})
    run(cfg, tmp_path / "run")
    funnel = json.loads((tmp_path / "run" / "funnel.json").read_text())
    rows = {r["stage"]: r for r in funnel["table"]}
    lowlevel, passed = funnel["stages"]["lowlevel"], funnel["stages"]["passthrough"]
    assert lowlevel["kept"] > 0
    assert passed == {"in": lowlevel["kept"], "kept": lowlevel["kept"], "dropped": {}, "failed": {}}
    assert funnel["stages"]["validation"]["in"] == passed["kept"]  # the validator got what it passed on
    assert rows["pass-through (test)"]["count"] == passed["kept"]
    assert rows["pass-through (test)"]["model"] == "counts rows"
    assert [r["stage"] for r in funnel["table"]].index("pass-through (test)") == 5  # in table order
    assert all(funnel["balanced"].values())


def test_every_stage_of_the_table_answers_a_stage_result():
    """One contract: whatever the stage, process() gives a StageResult (rows, tally, GPU-seconds by
    role, usage by role). Each stage of the table runs here in-process on the simulation on a batch
    of its real input, built by running the stages before it."""
    import numpy as np

    from nhr_ray.stages.base import StageResult

    cfg = small_config(**{"task.num_scenes": 2, "sources.seeds_per_prompt": 1})
    built = {}

    def stage(name):
        if name not in built:
            built[name] = table.spec(name).load(cfg)(cfg)
            built[name].setup()
        return built[name]

    out = {"design": stage("design").process([0])}
    scenes = out["design"].rows
    out["sources"] = stage("sources").process([(s, 0) for s in scenes])
    out["gate"] = stage("gate").process(out["sources"].rows)
    srcs = {s.source_id: s for s in out["gate"].rows}
    from nhr_ray.records import Job

    # every instruction, 5 attempts: enough for a candidate to pass the fallible simulated judges
    jobs = [Job(f"{sid}.i{k}.m{m}", f"{sid}.i{k}", sid, k, m, 7 + m) for sid, s in srcs.items()
            for k in range(len(s.instructions)) for m in range(5)]  # fmt: skip
    rows, alive_in = jobs, {}
    for s in table.attempt_stages():
        alive_in[s.name] = sum(1 for a in rows if getattr(a, "alive", True))  # a stage marks its drops in place
        out[s.name] = stage(s.name).process(rows, srcs)
        rows = out[s.name].rows
    from nhr_ray.io.images import encode

    kept = [a for a in out["validation"].rows if a.alive]
    fwd = [{"sample_id": a.job.attempt_id, "prompt": srcs[a.job.source_id].prompt, "edit_instruction": a.instruction.text}
           for a in kept]  # fmt: skip
    out["inversion"] = stage("inversion").process(fwd)
    assert [f["sample_id"] for f, _text, _v, _u in out["inversion"].rows] == [f["sample_id"] for f in fwd]
    from triplet_rows import triplet

    inverses = [triplet(sample_id=f"inv-{a.job.attempt_id}", kind="inverse", edit_instruction="Put it back.",
                        source_image={"bytes": encode(a.edited), "path": None},
                        edited_image={"bytes": encode(srcs[a.job.source_id].image), "path": None}) for a in kept]  # fmt: skip
    out["consistency"] = stage("consistency").process(inverses)
    assert [sid for sid, _v, _u in out["consistency"].rows] == [t.sample_id for t in inverses]
    for name, r in out.items():
        assert isinstance(r, StageResult), name
        assert r.tally.stage == name and r.tally.balanced(), name  # consistency's tally: apply_consistency's
        assert all(isinstance(v, float) for v in r.gpu_seconds.values()), name
    assert out["design"].rows and out["sources"].gpu_seconds.keys() == {"t2i"} and out["gate"].gpu_seconds.keys() == {"gate"}
    assert all(isinstance(a.edited, np.ndarray) for a in out["edit"].rows if a.alive)
    assert out["validation"].tally.n_in == alive_in["validation"] > 0
    assert kept, "no candidate reached inversion: the batch is too small to test the final stages"
    assert set(out) == {s.name for s in table.STAGES if s.stage is not None}  # every stage with a class ran here
