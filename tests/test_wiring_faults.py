"""Wiring mutations must show (issue 17). Each fault of nhr_ray/testing/faults.py, injected through its
test-only hook (NHR_RAY_TEST_FAULT), must move a measured figure (nhr_ray/testing/wiring.py: kept
counts, and true precision read by the simulation's oracle) far beyond run-to-run noise.

Measured with `python benchmarks/wiring_faults.py --set prefilter.enabled=false --seeds 0 1 2 3 4 5`
(12 scenes, this module's config; clean runs at seeds 0-5, each fault at seed 0), on the simulation
with fallible judges (2026-11-30):

    figure (clean, seeds 0-5)                          range       spread  fault at seed 0 (clean .2194 etc.)
    pass_share          .219 .245 .276 .224 .238 .341  .219-.341   .122    wrong_image        -> 0 (0 of 310)
                                                                           other_instruction  -> 0 (0 of 310)
                                                                           swapped            -> 0 (0 of 310)
    inverse_kept_share  .762 .815 1.0 .826 .864 .857   .762-1.0    .238    unrelated_inverse  -> 0 (0 of 22)
    junk_at_validator   2 4 3 11 4 3                   2-11        9       lowlevel_off       -> 52

A fault must put its figure beyond every clean seed's by more than the clean seeds' own spread (max
- min over the six, about 2.5 standard deviations): below min - spread, or above max + spread. The
fault runs are also the exact counterfactual of the clean seed-0 run (a run is deterministic for its
seed; the same 310 candidates reach the validator), which the benchmark's JSON compares figure by
figure. Re-measure RANGE when the simulation's judges or world change.

wrong_image hands the validator the edit of another pair's attempt (an index off by one in a batch
the scheduler fills from all over the queue). A mix-up inside one pair barely shows in this world:
its attempts succeed or fail together (sim.pair_concentration, set with Table 3's best-of row), so
another attempt's edit of the same pair is judged about as the right one would be (measured: the
validated set's precision .985 -> .943, inside the clean seeds' range).

strict_threshold (`>` for `>=`) moves only candidates scored exactly on 4.7 (4-9 per run reach the
validator on a threshold on one axis; at seed 0 it drops 4 of 68 validated), too few for a run-level
figure, so it is tested at stage level below.

The stage-level tests pin what each judge fault does to the requests a judge is sent (what the
OpenAI SDK actually posted to a local server), and the `>`-instead-of-`>=` fault on crafted answers
at 4.7 and one 0.05 step either side.
"""

import json
import os
import re

import pytest

from nhr_ray.backends.openai_vlm import data_uri
from nhr_ray.config import validate_config
from nhr_ray.records import Attempt, Instruction, Job, Source
from nhr_ray.roles import ROLE_KINDS
from nhr_ray.stages.table import spec
from nhr_ray.stages.validation import ValidationStage
from nhr_ray.testing import faults
from nhr_ray.testing.fake_api import FakeAPIServer, prompt_text

# ----- the faults at the judge's boundary, stage by stage (no Ray) ----------------------------------


def _img(seed: int, w: int = 24, h: int = 16):
    import numpy as np

    return np.full((h, w, 3), seed * 7 % 256, dtype=np.uint8)


def _attempt(pair: str, m: int, instruction: str, seed: int) -> tuple[Attempt, Source]:
    src = Source(f"{pair}.src", pair, "a lamp on a table", 0, 24, 16, _img(seed))
    job = Job(f"{pair}.m{m}", pair, src.source_id, 0, m, 0)
    return Attempt(job, Instruction(0, instruction, "remove"), 24, 16, edited=_img(seed + 1 + m)), src


def _validate(srv, attempts: list[tuple[Attempt, Source]], fault: str | None, monkeypatch):
    cfg = validate_config({"roles": {**{r: {"backend": "sim"} for r in ROLE_KINDS if r != "validator"},
                                     "validator": {"backend": "openai_server",
                                                   "options": {"base_url": srv.base_url, "model": "judge", "max_retries": 0}}}})  # fmt: skip
    stage = ValidationStage(cfg)
    stage.setup()
    if fault:
        monkeypatch.setenv(faults.ENV, fault)
    assert faults.install(stage) == fault
    monkeypatch.delenv(faults.ENV, raising=False)
    try:
        return stage.process([a for a, _ in attempts], {s.source_id: s for _, s in attempts})
    finally:
        stage.teardown()


def _scores_in_instruction(rec) -> str:
    """The judge's answer: the scores written in the instruction it was sent ('... [4.7 4.9]')."""
    a, b = re.search(r"\[([\d.]+) ([\d.]+)\]", prompt_text(rec)).groups()
    return json.dumps({"adherence": float(a), "aesthetics": float(b)})


def _sent(srv) -> dict[str, tuple[list[str], str]]:
    """What the judge was sent, by the instruction it was asked about: (image data URIs, prompt)."""
    out = {}
    for rec in srv.records:
        parts = rec.body["messages"][-1]["content"]
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        out[re.search(r"\[(\w+)\]", text).group(1)] = ([p["image_url"]["url"] for p in parts if p["type"] == "image_url"], text)
    return out


def test_each_judge_fault_rewrites_what_the_validator_is_sent(monkeypatch):
    batch = [_attempt("P", 0, "Remove the lamp [p0]", 1), _attempt("P", 1, "Remove the lamp [p1]", 1),
             _attempt("Q", 0, "Remove the mug [q0]", 5)]  # fmt: skip
    src = {k: data_uri(s.image) for k, (_, s) in zip(("p0", "p1", "q0"), batch)}
    out = {k: data_uri(a.edited) for k, (a, _) in zip(("p0", "p1", "q0"), batch)}
    answer = lambda rec: '{"adherence": 5.0, "aesthetics": 5.0}'  # noqa: E731
    sent = {}
    for fault in (None, "wrong_image", "swapped", "other_instruction"):
        with FakeAPIServer("openai", responder=answer) as srv:
            r = _validate(srv, batch, fault, monkeypatch)
        sent[fault] = _sent(srv) if fault != "other_instruction" else srv.records
        assert r.tally.notes.get(f"TEST_FAULT_{fault}", 0) == (1 if fault else 0)
    assert {k: v[0] for k, v in sent[None].items()} == {k: [src[k], out[k]] for k in src}
    # another attempt's edited image: the next one in the batch of another pair
    assert {k: v[0] for k, v in sent["wrong_image"].items()} == {"p0": [src["p0"], out["q0"]], "p1": [src["p1"], out["q0"]],
                                                                  "q0": [src["q0"], out["p0"]]}  # fmt: skip
    assert {k: v[0] for k, v in sent["swapped"].items()} == {k: [out[k], src[k]] for k in src}
    # another pair's instruction: each candidate's own images, another pair's prompt
    got = sorted((tuple(p["image_url"]["url"] for p in rec.body["messages"][-1]["content"] if p["type"] == "image_url"),
                  re.search(r"\[(\w+)\]", prompt_text(rec)).group(1)) for rec in sent["other_instruction"])  # fmt: skip
    assert sorted(got) == sorted([((src["p0"], out["p0"]), "q0"), ((src["p1"], out["p1"]), "q0"), ((src["q0"], out["q0"]), "p0")])


def test_strict_threshold_fault_rejects_exactly_the_scores_on_the_threshold(monkeypatch):
    """`>` for `>=`: 4.7 on either axis fails; 4.65 fails and 4.75 passes either way."""
    grid = [(4.7, 4.9), (4.9, 4.7), (4.7, 4.7), (4.75, 4.75), (4.65, 4.9), (4.9, 4.65), (4.75, 5.0)]
    batch = [_attempt(f"S{k}", 0, f"Remove the lamp [{a} {b}]", k) for k, (a, b) in enumerate(grid)]
    kept = {}
    for fault in (None, "strict_threshold"):
        with FakeAPIServer("openai", responder=_scores_in_instruction) as srv:
            r = _validate(srv, batch, fault, monkeypatch)
        kept[fault] = [(v.adherence, v.aesthetics) for v in (a.verdicts[-1] for a in r.rows) if v.keep]
    assert kept[None] == [(4.7, 4.9), (4.9, 4.7), (4.7, 4.7), (4.75, 4.75), (4.75, 5.0)]
    assert kept["strict_threshold"] == [(4.75, 4.75), (4.75, 5.0)]


def test_a_fault_is_named_and_only_hits_its_own_stage(monkeypatch):
    from nhr_ray.config import load_config
    from nhr_ray.stages.lowlevel import LowLevelStage

    monkeypatch.setenv(faults.ENV, "no_such_fault")
    with pytest.raises(ValueError, match="no_such_fault.*known"):
        faults.active()
    monkeypatch.setenv(faults.ENV, "wrong_image")
    stage = LowLevelStage(load_config())
    assert faults.install(stage) is None and faults.env_vars() == {faults.ENV: "wrong_image"}
    monkeypatch.setenv(faults.ENV, "lowlevel_off")
    assert faults.install(stage) == "lowlevel_off" and not stage.config.lowlevel.enabled
    monkeypatch.delenv(faults.ENV)
    assert faults.active() is None and faults.env_vars() == {}
    assert os.environ.get(faults.ENV) is None


# ----- whole runs: each fault against a clean run of the same config and seed -------------------------

# the soft pre-filter off: the low-level check then sees the junk it exists to stop (behind the
# pre-filter it sees about 2 % junk, 3 of 153 candidates at seed 0: too few to measure at this size)
RUN_SETS = {"seed": 0, "prefilter.enabled": False}
# (min, max) of each figure over clean runs at seeds 0-5, this config (benchmarks/wiring_faults.py; the
# module docstring has the numbers); a fault must land beyond that range by more than its width
RANGE = {"pass_share": (0.2194, 0.3411), "inverse_kept_share": (0.7619, 1.0), "junk_at_validator": (2, 11)}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster; each run is its own Ray job on it, so each gets its own fault."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 16, "num_gpus": 16, "include_dashboard": False})
    yield c
    c.shutdown()


def _run(cluster, out, fault: str | None) -> dict:
    from conftest import small_config
    from nhr_ray.testing.wiring import faulted_run

    return faulted_run(small_config(**RUN_SETS), out, fault, cluster.address)


@pytest.fixture(scope="module")
def clean(cluster, tmp_path_factory):
    return _run(cluster, tmp_path_factory.mktemp("wiring") / "clean", None)


def test_a_clean_run_records_no_fault(clean):
    assert clean["fault"] is None and clean["fault_notes"] == {}  # faulted_run checked manifest.json too


# each fault, the figure it must move and in which direction
MOVES = [
    ("wrong_image", "pass_share", -1),  # the validator, judging another pair's edit, passes almost nothing
    ("other_instruction", "pass_share", -1),  # reading another pair's instruction, it passes almost nothing
    ("swapped", "pass_share", -1),  # handed source and edit swapped, likewise
    ("unrelated_inverse", "inverse_kept_share", -1),  # unrelated inverse instructions fail backward consistency
    ("lowlevel_off", "junk_at_validator", +1),  # without the low-level check, junk edits reach the validator
]


@pytest.mark.parametrize("fault, figure, sign", MOVES, ids=[m[0] for m in MOVES])
def test_each_fault_moves_its_figure_far_beyond_seed_noise(cluster, clean, tmp_path, fault, figure, sign):
    bad = _run(cluster, tmp_path / fault, fault)  # manifest.json's test_fault checked by faulted_run
    stage = faults.FAULTS[fault].stage
    # a streaming stage's funnel row counts the fault; final stages' rows are rebuilt from their verdicts
    assert list(bad["fault_notes"]) == ([f"{stage}:TEST_FAULT_{fault}"] if spec(stage).phase == "stream" else [])
    lo, hi = RANGE[figure]
    assert clean[figure] is not None and lo <= clean[figure] <= hi, (clean[figure], RANGE[figure])  # the clean run is one of them
    beyond = lo - bad[figure] if sign < 0 else bad[figure] - hi
    assert beyond > hi - lo, (figure, bad[figure], RANGE[figure], bad)


def test_a_faulted_runs_last_line_says_so():
    from nhr_ray.cli import run_summary

    m = {"triplets": {}, "wall_seconds": 1.0, "gpu_hours": {"busy_gpu_hours": 0.0}, "test_fault": "swapped"}
    assert run_summary(m, "OUT").endswith(" (TEST FAULT swapped: wrong on purpose)")
    assert "TEST FAULT" not in run_summary({**m, "test_fault": None}, "OUT")
