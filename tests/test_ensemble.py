"""The ensemble validator (issue 19, judging.ensemble; stages/panel.py): several judges score every
candidate, their scores combine by the config's rule, and each judge's scores are kept.

Stage level: three real OpenAI clients against three local servers (one per judge), each answering
the scores written for it in the instruction ('Remove the lamp [4.7 4.9 | 4.6 5.0 | ...]'), so every
combination rule is checked on crafted scores, one grid step either side of the bar. Run level: the
simulated ensemble through the whole pipeline on Ray, its scores in the attempts table, and the
simulated judges' errors correlated as `sim.judge_error_correlation` says."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack

import numpy as np
import pytest

from nhr_ray.config import ConfigError, load_config, validate_config
from nhr_ray.records import Attempt, Instruction, Job, Source
from nhr_ray.roles import ROLE_KINDS
from nhr_ray.stages.panel import combine
from nhr_ray.stages.validation import ValidationStage
from nhr_ray.testing import faults
from nhr_ray.testing.fake_api import FakeAPIServer, prompt_text

NAMES = ("tuned", "imgedit", "editscore")
TEXTS = {"prose": "The edit looks fine.", "oob": '{"adherence": 7.5, "aesthetics": 4.8}', "no": "no"}


def _img(seed: int):
    return np.full((16, 24, 3), seed * 7 % 256, dtype=np.uint8)


def _attempt(k: int, scores: list[tuple]) -> tuple[Attempt, Source]:
    """Attempt k, whose instruction carries each judge's answer: (adherence, aesthetics) or a text."""
    said = " | ".join(s if isinstance(s, str) else f"{s[0]} {s[1]}" for s in scores)
    src = Source(f"S{k}.src", f"S{k}", "a lamp on a table", 0, 24, 16, _img(k))
    job = Job(f"S{k}.m0", f"S{k}", src.source_id, 0, 0, 0)
    return Attempt(job, Instruction(0, f"Remove the lamp [{said}]", "remove"), 24, 16, edited=_img(k + 50)), src


def _responder(i: int):
    def answer(rec) -> str:
        said = re.search(r"\[([^\]]*)\]", prompt_text(rec)).group(1).split(" | ")[i]
        if re.fullmatch(r"[\d.]+ [\d.]+", said):
            a, b = said.split()
            return json.dumps({"adherence": float(a), "aesthetics": float(b)})
        return TEXTS[said]

    return answer


def _judged(rows: list[list], ensemble: dict | None = None, faults_of=lambda i: None, validation=None, fault=None,
            monkeypatch=None):  # fmt: skip
    """Stage 8 on one attempt per row of per-judge answers -> (StageResult, servers)."""
    batch = [_attempt(k, row) for k, row in enumerate(rows)]
    with ExitStack() as stack:
        srvs = [stack.enter_context(FakeAPIServer("openai", responder=_responder(i), faults=faults_of(i))) for i in range(3)]
        judges = [{"name": n, "backend": "openai_server", "options": {"base_url": s.base_url, "model": n, "max_retries": 0}}
                  for n, s in zip(NAMES, srvs)]  # fmt: skip
        cfg = validate_config({
            "roles": {**{r: {"backend": "sim"} for r in ROLE_KINDS if r != "validator"}, "validator": {"backend": "sim"}},
            "judging": {"ensemble": {"judges": judges, **(ensemble or {})}}, "validation": validation or {},
        })  # fmt: skip
        stage = ValidationStage(cfg)
        stage.setup()
        if fault:
            monkeypatch.setenv(faults.ENV, fault)
        assert faults.install(stage) == fault
        if fault:
            monkeypatch.delenv(faults.ENV)
        try:
            return stage.process([a for a, _ in batch], {s.source_id: s for _, s in batch}), srvs
        finally:
            stage.teardown()


def _verdicts(result):
    return [a.verdicts[-1] for a in result.rows]


# ----- combination rules, at the bar and one 0.05 step either side ----------------------------------------


def test_mean_rule_crosses_the_bar_by_one_step_and_keeps_every_judges_scores():
    rows = [
        [(4.7, 4.7), (4.7, 4.7), (4.7, 4.7)],  # mean 4.7: on the bar, kept
        [(4.6, 4.9), (4.7, 4.9), (4.65, 4.9)],  # mean 4.65 adherence: one step under
        [(4.75, 4.6), (4.75, 4.75), (4.75, 4.9)],  # mean 4.75 / 4.75: one step over
        [(5.0, 4.6), (4.1, 4.8), (5.0, 4.8)],  # mean adherence 4.7, aesthetics 4.7333: kept though judge 2 says 4.1
        [(4.7, 4.65), (4.7, 4.65), (4.7, 4.65)],  # aesthetics one step under
    ]
    r, srvs = _judged(rows)
    vs = _verdicts(r)
    assert [(v.reason, v.adherence, v.aesthetics) for v in vs] == [
        ("ok", 4.7, 4.7), ("low_adherence", 4.65, 4.9), ("ok", 4.75, 4.75), ("ok", 4.7, 4.7333),
        ("low_aesthetics", 4.7, 4.65)]  # fmt: skip
    assert vs[3].judges == [
        {"judge": "tuned", "adherence": 5.0, "aesthetics": 4.6, "outcome": "dropped", "reason": "low_aesthetics"},
        {"judge": "imgedit", "adherence": 4.1, "aesthetics": 4.8, "outcome": "dropped", "reason": "low_adherence"},
        {"judge": "editscore", "adherence": 5.0, "aesthetics": 4.8, "outcome": "kept", "reason": "ok"},
    ]
    assert [len(s.records) for s in srvs] == [5, 5, 5]  # every judge asked about every candidate
    assert r.tally.kept == 3 and r.tally.balanced()
    assert json.loads(vs[0].raw) == {n: json.dumps({"adherence": 4.7, "aesthetics": 4.7}) for n in NAMES}


def test_min_rule_needs_every_judge_over_the_bar():
    rows = [[(4.7, 4.7), (4.9, 5.0), (5.0, 5.0)], [(4.65, 5.0), (5.0, 5.0), (5.0, 5.0)], [(5.0, 5.0), (5.0, 5.0), (5.0, 4.65)]]
    vs = _verdicts(_judged(rows, {"combine": "min"})[0])
    assert [(v.reason, v.adherence, v.aesthetics) for v in vs] == [
        ("ok", 4.7, 4.7), ("low_adherence", 4.65, 5.0), ("low_aesthetics", 5.0, 4.65)]  # fmt: skip


def _calibration_file(tmp_path, name, bias, sd, n=120):
    axes = {a: {"mae": sd * 0.8, "spearman": 0.7, "mean_validator": 4.0 + bias[i], "mean_human": 4.0, "bias": bias[i],
                "error_sd": sd} for i, a in enumerate(("adherence", "aesthetics"))}  # fmt: skip
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps({"n_triplets": n, "axes": axes}))
    return str(p)


def test_calibrated_rule_removes_each_judges_bias_and_weights_by_its_error(tmp_path):
    cal = {"tuned": ((0.1, 0.3), 0.5), "imgedit": ((-0.2, 0.0), 1.0), "editscore": ((0.0, 0.5), 1.0)}
    cfg_judges = [{"name": n, "calibration": _calibration_file(tmp_path, n, *cal[n])} for n in NAMES]
    cfg = load_config(overrides=[f"judging.ensemble.judges={json.dumps(cfg_judges)}", "judging.ensemble.combine=calibrated"])
    judges = cfg.validator_judges()
    assert [j.bias for j in judges] == [{"adherence": 0.1, "aesthetics": 0.3}, {"adherence": -0.2, "aesthetics": 0.0},
                                        {"adherence": 0.0, "aesthetics": 0.5}]  # fmt: skip
    # weights 4 : 1 : 1; adherence (4 (4.9 - .1) + (4.5 + .2) + 4.9) / 6 = 4.8, aesthetics (4 (5 - .3) + 4.9 + 4.5) / 6 = 4.7
    assert combine("calibrated", [(4.9, 5.0), (4.5, 4.9), (4.9, 5.0)], judges) == (4.8, 4.7)
    assert combine("calibrated", [(4.9, 4.95), (4.5, 4.9), (4.9, 5.0)], judges) == (4.8, 4.6667)  # one step down
    with FakeAPIServer("openai") as srv:  # through the stage: a 4.7 combined aesthetics is kept, 4.6667 is not
        for j in cfg_judges:
            j.update(backend="openai_server", options={"base_url": srv.base_url, "model": j["name"], "max_retries": 0})
        sets = [f"judging.ensemble.judges={json.dumps(cfg_judges)}", "judging.ensemble.combine=calibrated",
                *(f"roles.{r}.backend=sim" for r in ROLE_KINDS)]  # fmt: skip
        stage = ValidationStage(load_config(overrides=sets))
        stage.setup()
        a, s = _attempt(0, [])
        srv.responder = lambda rec: '{"adherence": 4.9, "aesthetics": 5.0}'
        v = stage.process([a], {s.source_id: s}).rows[0].verdicts[-1]
        stage.teardown()
    # all three say 4.9 / 5.0: adherence (4 x 4.8 + 5.1 + 4.9) / 6 = 4.8667, aesthetics (4 x 4.7 + 5 + 4.5) / 6 = 4.7167
    assert (v.reason, v.adherence, v.aesthetics) == ("ok", 4.8667, 4.7167)


# ----- a judge that cannot be read, or fails ----------------------------------------------------------------


def test_an_unreadable_judge_drops_the_candidate_under_its_own_name():
    rows = [[(5.0, 5.0), "prose", (5.0, 5.0)], [(5.0, 5.0), (5.0, 5.0), "oob"]]
    r, _ = _judged(rows)
    assert [v.reason for v in _verdicts(r)] == ["imgedit:scores_no_json", "editscore:scores_out_of_range_score"]
    assert r.tally.dropped == {"imgedit:scores_no_json": 1, "editscore:scores_out_of_range_score": 1}
    assert _verdicts(r)[0].judges[1] == {"judge": "imgedit", "adherence": None, "aesthetics": None, "outcome": "dropped",
                                         "reason": "scores_no_json"}  # fmt: skip


def test_min_judges_combines_the_others_and_counts_the_missing_one():
    rows = [[(5.0, 4.8), "prose", (4.6, 4.8)], [(5.0, 5.0), "no", "no"]]
    r, _ = _judged(rows, {"min_judges": 2})
    v0, v1 = _verdicts(r)
    assert (v0.reason, v0.adherence, v0.aesthetics) == ("ok", 4.8, 4.8)
    assert v1.reason == "imgedit:scores_no_json"  # one readable judge of the two needed
    assert r.tally.notes == {"judge_missing:imgedit:scores_no_json": 1}


def test_a_failed_judge_call_is_a_failure_not_a_judgement():
    r, srvs = _judged([[(5.0, 5.0), (5.0, 5.0), (5.0, 5.0)]], faults_of=lambda i: (lambda rec: "500") if i == 2 else None)
    [v] = _verdicts(r)
    assert v.failed and v.reason.startswith("editscore:error:") and r.tally.failed[v.reason] == 1
    assert [len(s.records) for s in srvs] == [1, 1, 1]


def test_a_wiring_fault_hits_every_judge(monkeypatch):
    """The wrong-image fault (testing/faults.py) reaches each judge of the panel: each is sent another
    pair's edit. Were a judge's backend out of the fault's reach, its requests would be the clean ones."""
    from nhr_ray.backends.openai_vlm import data_uri

    rows = [[(5.0, 4.9)] * 3, [(5.0, 5.0)] * 3]  # S0's instruction says 4.9, S1's 5.0
    edits = {"4.9": data_uri(_img(50)), "5.0": data_uri(_img(51))}
    for fault, want in ((None, edits), ("wrong_image", {"4.9": edits["5.0"], "5.0": edits["4.9"]})):
        _, srvs = _judged(rows, fault=fault, monkeypatch=monkeypatch)
        for s in srvs:  # the edit each judge was sent, by the candidate it was asked about
            sent = {re.search(r"\[5.0 ([\d.]+)", prompt_text(rec)).group(1):
                    [p["image_url"]["url"] for p in rec.body["messages"][-1]["content"] if p["type"] == "image_url"][1]
                    for rec in s.records}  # fmt: skip
            assert sent == want, (fault, s.records[0].body["model"])


# ----- the config refuses what cannot run -----------------------------------------------------------------


@pytest.mark.parametrize("sets, message", [
    (["judging.ensemble.judges=[{name: a}]"], "at least 2"),
    (["judging.ensemble.judges=[{name: a}, {name: a}]"], "unique"),
    (["judging.ensemble.judges=[{name: A b}, {name: c}]"], "pattern"),
    (["judging.ensemble.judges=[{name: a}, {name: b}]", "judging.ensemble.combine=calibrated"], "a, b have none"),
    (["judging.ensemble.judges=[{name: a}, {name: b}]", "judging.ensemble.combine=median"], "combine"),
    (["judging.ensemble.judges=[{name: a}, {name: b}]", "judging.ensemble.min_judges=3"], "more than the 2"),
    (["judging.ensemble.judges=[{name: a, calibration: /nonexistent.json}, {name: b}]"], "no such file"),
    (["judging.ensemble.judges=[{name: a, backend: nope}, {name: b}]", *(f"roles.{r}.backend=sim" for r in ROLE_KINDS)],
     "judges\\[a\\].backend: .*unknown backend 'nope'"),
    (["judging.ensemble.judges=[{name: a, options: {temperature: 0}}, {name: b}]"], "judges\\[a\\].options"),
    (["judging.ensemble.judges=[{name: a, profile: editscore}, {name: b}]"], "needs a real judge model"),
    (["judging.ensemble.judges=[{name: a, backend: vllm}, {name: b}]"], "roles.designer.backend.*not named.*judge a: vllm"),
    (["judging.ensemble.judges=[{name: a, bias: {adherence: 0.1}, error_sd: {adherence: 1, aesthetics: 1}}, {name: b}]"],
     "exactly the axes"),
    (["judging.ensemble.judges=[{name: a, bias: {adherence: 0, aesthetics: 0}, error_sd: {adherence: 0, aesthetics: 1}}, "
      "{name: b}]"], "not a usable figure"),
])  # fmt: skip
def test_bad_ensemble_configs_are_refused_with_the_key(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=sets)


@pytest.mark.parametrize("content, message", [
    ("not json", "not a report of `nhr-ray calibrate`"),
    ('{"axes": {"adherence": {"mae": 0.5}}}', "not a report"),
    (json.dumps({"n_triplets": 12, "axes": {a: {"mae": 0.5, "mean_validator": 4, "mean_human": 4} for a in ("adherence", "aesthetics")}}),
     "from 12 triplets"),
])  # fmt: skip
def test_a_bad_calibration_file_is_refused(tmp_path, content, message):
    p = tmp_path / "calibration.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[f"judging.ensemble.judges=[{{name: a, calibration: {p}}}, {{name: b}}]",
                               "judging.ensemble.combine=calibrated"])  # fmt: skip


def test_an_old_calibration_report_gives_the_spread_from_its_mae(tmp_path):
    p = tmp_path / "old.json"
    p.write_text(json.dumps({"n_triplets": 300, "axes": {a: {"mae": 0.5, "mean_validator": 4.3, "mean_human": 4.0}
                                                          for a in ("adherence", "aesthetics")}}))  # fmt: skip
    cfg = load_config(overrides=[f"judging.ensemble.judges=[{{name: a, calibration: {p}}}, {{name: b, calibration: {p}}}]",
                                 "judging.ensemble.combine=calibrated"])  # fmt: skip
    j = cfg.validator_judges()[0]
    assert j.bias == {"adherence": pytest.approx(0.3), "aesthetics": pytest.approx(0.3)}
    assert j.error_sd["adherence"] == pytest.approx(0.5 * np.sqrt(np.pi / 2))


# ----- simulated judges: their errors correlate as stated ------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_two_simulated_judges_errors_correlate_as_stated(rho):
    """quality.py: e = sqrt(rho) shared + sqrt(1 - rho) own, per axis, own drawn under the judge's name."""
    from nhr_ray.backends.sim import quality as Q

    lats = [Q.Latents((0.0, 0.0), 4.5, k.to_bytes(8, "little"), (k // 4).to_bytes(8, "little")) for k in range(4000)]
    e = {n: np.array([Q.judge_errors(*Q.error_draws(lat, n), rho, Q.VALIDATOR.halo) for lat in lats]) for n in ("a", "b")}
    for axis in (0, 1):
        assert np.corrcoef(e["a"][:, axis], e["b"][:, axis])[0, 1] == pytest.approx(rho, abs=0.05)
        assert np.std(e["a"][:, axis]) == pytest.approx(1.0, abs=0.05)  # one judge's own figures do not move with rho


def test_simulated_judges_scores_follow_the_correlation_and_their_names():
    """Through the sim backend on real candidates (the simulation's T2I and editor, in-process): two
    judges' errors against the truth correlate more as sim.judge_error_correlation rises (at 0 they
    still share the systematic error of one error model), and a judge's scores are its name's: the
    same name gives the same scores, another name others."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from sim_judges import candidates, truth_of

    from nhr_ray.judges.profiles import get_profile
    from nhr_ray.roles import BackendContext, build_backend

    cands, prof = candidates(12, 0), get_profile("nhr")
    assert len(cands) >= 100
    truth = np.array([[truth_of(c)["adh"], truth_of(c)["aes"]] for c in cands])
    reqs = [r for c in cands for r in prof.requests(c["id"], c["instruction"], c["source"], c["edited"])]

    def scores(rho, name):
        cfg = load_config(overrides=[f"sim.judge_error_correlation={rho}", "sim.malformed_rate=0"])
        j = build_backend("validator", "sim", {}, BackendContext("validator", 0, 0, cfg.sim, run_config=cfg, judge=name))
        return np.array([[p.value["adherence"], p.value["aesthetics"]] for p in (prof.parse([a.text]) for a in j.ask(reqs))])

    corr = {}
    for rho in (0.0, 0.5, 0.9):
        a, b = scores(rho, "a") - truth, scores(rho, "b") - truth
        corr[rho] = [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in (0, 1)]
    for k in (0, 1):
        assert corr[0.0][k] + 0.15 < corr[0.5][k] and corr[0.5][k] + 0.15 < corr[0.9][k], corr
    assert (scores(0.5, "a") == scores(0.5, "a")).all()
    assert (scores(0.5, "a") != scores(0.5, "b")).any(axis=1).mean() > 0.5

    # a judge's options: whose error model it follows, and what a question costs
    cfg = load_config(overrides=["sim.malformed_rate=0"])
    ctx = BackendContext("validator", 0, 1, cfg.sim, run_config=cfg, judge="a")
    tuned = build_backend("validator", "sim", {"gpu_seconds": 0.739}, ctx).ask(reqs)
    base = build_backend("validator", "sim", {"errs_as": "prefilter"}, ctx).ask(reqs)
    assert {a.gpu_seconds for a in tuned} == {0.739} and {a.gpu_seconds for a in base} == {0.0}
    mae = [np.abs(np.array([list(prof.parse([a.text]).value.values()) for a in ans]) - truth).mean(axis=0)
           for ans in (tuned, base)]  # fmt: skip
    assert mae[1][0] > mae[0][0] + 0.2  # the 72B's adherence errs far more than the tuned validator's (Table 1)


def test_a_saved_config_with_its_calibration_reloads_with_or_without_the_file(tmp_path):
    """A run's manifest carries the config with `calibration` and the figures read from it: export,
    report and resume validate it again, on this machine or one without the file."""
    from nhr_ray.config import RunConfig

    p = _calibration_file(tmp_path, "a", (0.2, -0.1), 0.6)
    cfg = load_config(overrides=[f"judging.ensemble.judges=[{{name: a, calibration: {p}}}, {{name: b, calibration: {p}}}]",
                                 "judging.ensemble.combine=calibrated"])  # fmt: skip
    saved = cfg.model_dump(mode="json")
    assert RunConfig.model_validate(saved).validator_judges() == cfg.validator_judges()
    saved["judging"]["ensemble"]["judges"][0]["bias"]["adherence"] = 0.3  # figures that are not the file's
    with pytest.raises(ValueError, match="is not what .* says"):
        RunConfig.model_validate(saved)
    (tmp_path / "a.json").unlink()
    assert RunConfig.model_validate(saved).validator_judges()[0].bias == {"adherence": 0.3, "aesthetics": -0.1}


def test_a_judge_on_the_validators_backend_takes_its_options_updated_with_its_own():
    sets = [*(f"roles.{r}.backend=sim" for r in ROLE_KINDS if r != "validator"), "roles.validator.backend=transformers",
            "roles.validator.options={model: base/qwen, device: cpu}",
            "judging.ensemble.judges=[{name: tuned, options: {lora: judges/v1}}, {name: plain}, "
            "{name: other, backend: sim, options: {gpu_seconds: 0.5}}]"]  # fmt: skip
    a, b, c = load_config(overrides=sets).validator_judges()
    assert (a.backend, a.options) == ("transformers", {"model": "base/qwen", "device": "cpu", "lora": "judges/v1"})
    assert (b.backend, b.options) == ("transformers", {"model": "base/qwen", "device": "cpu"})
    assert (c.backend, c.options) == ("sim", {"gpu_seconds": 0.5})
