"""Validator calibration: de-biasing, MAE, Spearman, classifier view, plots and bad input."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nhr_ray.cli import main
from nhr_ray.products.calibrate import calibrate


def _write(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        cols = list(rows[0])
        path.write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows))
    return path


def _ranks(x):
    try:
        from scipy.stats import rankdata

        return rankdata(x)
    except ImportError:  # average ranks by counting: (#smaller) + (#equal + 1) / 2
        x = np.asarray(x)
        return np.array([(x < v).sum() + ((x == v).sum() + 1) / 2 for v in x])


def _rho(a, b):
    return float(np.corrcoef(_ranks(np.asarray(a)), _ranks(np.asarray(b)))[0, 1])


def test_debiasing_by_hand(tmp_path):
    # rater A reads +1, C reads -1; A and C each saw only part of the set, so plain means are biased
    r = [("t1", "A", 5), ("t2", "A", 4), ("t1", "B", 4), ("t2", "B", 3), ("t3", "B", 2), ("t2", "C", 2), ("t3", "C", 1)]
    rows = [{"triplet": t, "rater": j, "adherence": s, "aesthetics": 6 - s} for t, j, s in r]
    preds = [{"triplet": t, "adherence": 4.0, "aesthetics": 2.0} for t in ("t1", "t2", "t3")]
    rep = calibrate(_write(tmp_path / "r.parquet", rows), _write(tmp_path / "p.parquet", preds))
    # m = (4.5, 3, 1.5); b_A = 4.5 - 3.75 = 0.75, b_B = 0, b_C = 1.5 - 2.25 = -0.75
    assert rep["rater_bias"]["adherence"] == pytest.approx({"A": 0.75, "B": 0.0, "C": -0.75})
    human = rep["_arrays"]["human"]["adherence"]
    assert list(human) == pytest.approx([4.125, 3.0, 1.875])
    assert rep["axes"]["adherence"]["mae"] == pytest.approx((0.125 + 1.0 + 2.125) / 3)
    assert rep["axes"]["adherence"]["spearman"] is None  # a constant validator has no rank correlation
    assert list(rep["_arrays"]["human"]["aesthetics"]) == pytest.approx([6 - 4.125, 3.0, 6 - 1.875])


def _world(seed=0, n=80, raters=8):
    rng = np.random.default_rng(seed)
    bias = rng.normal(0, 0.4, raters)
    truth = rng.uniform(1.5, 5.0, (n, 2))
    cats = ["remove", "add", "recolor"]
    ratings = []
    for t in range(n):
        for j in rng.choice(raters, size=int(rng.integers(2, 5)), replace=False):
            s = np.clip(truth[t] + bias[j] + rng.normal(0, 0.3, 2), 1, 5)
            ratings.append({"triplet": f"t{t}", "rater": f"r{j}", "adherence": float(s[0]), "aesthetics": float(s[1]),
                            "category": cats[t % 3]})  # fmt: skip
    preds = [{"triplet": f"t{t}", "adherence": float(np.clip(truth[t, 0] + rng.normal(0, 0.4), 1, 5)),
              "aesthetics": float(np.clip(truth[t, 1] + rng.normal(0, 0.5), 1, 5))} for t in range(n)]  # fmt: skip
    return ratings, preds


def _independent(ratings, preds, threshold):
    """The same metrics, computed another way: a triplets x raters matrix with NaN holes."""
    ts = sorted({r["triplet"] for r in ratings})
    js = sorted({r["rater"] for r in ratings})
    out = {}
    for axis in ("adherence", "aesthetics"):
        M = np.full((len(ts), len(js)), np.nan)
        for r in ratings:
            M[ts.index(r["triplet"]), js.index(r["rater"])] = r[axis]
        m = np.nanmean(M, axis=1)
        seen = ~np.isnan(M)
        b = np.nanmean(M, axis=0) - np.array([m[seen[:, k]].mean() for k in range(len(js))])
        h = np.nanmean(M - b[None, :], axis=1)
        p = np.array([next(q[axis] for q in preds if q["triplet"] == t) for t in ts])
        out[axis] = (h, p)
    pos = (out["adherence"][0] > 4.0) & (out["aesthetics"][0] > 4.0)
    call = (out["adherence"][1] >= threshold) & (out["aesthetics"][1] >= threshold)
    tp = sum(1 for a, c in zip(pos, call) if a and c)
    prec, rec = tp / call.sum(), tp / pos.sum()
    return ts, out, {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec), "accuracy": float((pos == call).mean())}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_metrics_match_an_independent_computation(tmp_path, fmt):
    ratings, preds = _world()
    rep = calibrate(_write(tmp_path / f"r.{fmt}", ratings), _write(tmp_path / f"p.{fmt}", preds), threshold=3.5)
    ts, ind, cls = _independent(ratings, preds, 3.5)
    assert rep["_arrays"]["ids"] == ts and rep["n_triplets"] == 80 and rep["excluded"]["ratings_without_prediction"] == 0
    for axis, (h, p) in ind.items():
        assert rep["axes"][axis]["mae"] == pytest.approx(np.abs(h - p).mean())
        assert rep["axes"][axis]["spearman"] == pytest.approx(_rho(h, p))
        for c in ("remove", "add", "recolor"):
            ix = [i for i, t in enumerate(ts) if ["remove", "add", "recolor"][int(t[1:]) % 3] == c]
            assert rep["per_category"][c]["n"] == len(ix)
            assert rep["per_category"][c][f"spearman_{axis}"] == pytest.approx(_rho(h[ix], p[ix]))
    for k, v in cls.items():
        assert rep["classifier"][k] == pytest.approx(v), k
    at = {s["threshold"]: s for s in rep["sweep"]}
    assert at[3.5]["precision"] == pytest.approx(cls["precision"])
    assert at[1.0]["recall"] == 1.0 and at[1.0]["fp"] + at[1.0]["tp"] == 80  # every triplet called positive


def test_cli_writes_json_and_plots(tmp_path, capsys):
    ratings, preds = _world(seed=1, n=40)
    rc = main(["calibrate", str(_write(tmp_path / "r.parquet", ratings)), "--predictions",
               str(_write(tmp_path / "p.parquet", preds)), "--out", str(tmp_path / "cal")])  # fmt: skip
    assert rc == 0
    rep = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert rep["threshold"] == 4.7 and len(rep["sweep"]) == 41 and "Spearman" in capsys.readouterr().out
    from PIL import Image

    for name in ("scatter.png", "threshold_sweep.png"):
        im = np.asarray(Image.open(tmp_path / "cal" / name).convert("L"), float)
        assert im.shape[0] > 200 and im.std() > 5, name  # a drawn plot, not a blank canvas


def test_bad_input(tmp_path, capsys):
    ratings, preds = _world(seed=2, n=20)
    # a missing column is an error naming it
    no_rater = [{k: v for k, v in r.items() if k != "rater"} for r in ratings]
    assert main(["calibrate", str(_write(tmp_path / "a.parquet", no_rater)), "--predictions",
                 str(_write(tmp_path / "p.parquet", preds)), "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "rater" in capsys.readouterr().err
    # non-numeric scores and unknown triplets are counted exclusions
    bad_r = ratings + [{"triplet": "t0", "rater": "r99", "adherence": "great", "aesthetics": 4, "category": "add"},
                       {"triplet": "t1", "rater": "r99", "adherence": 9, "aesthetics": 4, "category": "add"}]  # fmt: skip
    bad_p = preds[1:] + [{"triplet": "ghost", "adherence": 4.0, "aesthetics": 4.0},
                         {"triplet": "t0", "adherence": "n/a", "aesthetics": 4.0}]  # fmt: skip
    rep = calibrate(_write(tmp_path / "r.csv", bad_r), _write(tmp_path / "p.csv", bad_p))
    assert rep["excluded"] == {"ratings_non_numeric": 1, "ratings_out_of_range": 1, "predictions_unknown_triplet": 1,
                               "predictions_non_numeric": 1, "ratings_without_prediction": 1}  # fmt: skip
    assert rep["n_triplets"] == 19 and "r99" not in rep["rater_bias"]["adherence"]
    # a triplet predicted twice is ambiguous: an error
    with pytest.raises(ValueError, match="more than once"):
        calibrate(_write(tmp_path / "r2.parquet", ratings), _write(tmp_path / "p2.parquet", preds + preds[:1]))


def _cal(tmp_path, ratings, preds, *flags):
    r = _write(tmp_path / "r.parquet", ratings)
    p = _write(tmp_path / "p.parquet", preds)
    return main(["calibrate", str(r), "--predictions", str(p), "--out", str(tmp_path / "cal"), *flags])


def _renamed(rows, **names):
    return [{names.get(k, k): v for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("t_name,r_name", [("triplet_id", "rater_id"), ("sample_id", "annotator"), ("triplet", "annotator_id")])
def test_common_column_spellings(tmp_path, capsys, t_name, r_name):
    ratings, preds = _world(seed=3, n=30)
    want = calibrate(_write(tmp_path / "a.parquet", ratings), _write(tmp_path / "b.parquet", preds))
    assert _cal(tmp_path, _renamed(ratings, triplet=t_name, rater=r_name), _renamed(preds, triplet=t_name)) == 0, \
        capsys.readouterr().err
    got = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert got["n_triplets"] == 30 and got["axes"]["adherence"]["mae"] == pytest.approx(want["axes"]["adherence"]["mae"])
    assert got["rater_bias"] == want["rater_bias"]


def test_competing_columns_are_an_error_and_flags_choose(tmp_path, capsys):
    ratings, preds = _world(seed=4, n=20)
    both = [{**r, "sample_id": "s" + r["triplet"], "rater_id": r["rater"]} for r in ratings]
    assert _cal(tmp_path, both, preds) == 2
    err = capsys.readouterr().err
    assert "competing triplet id columns ['triplet', 'sample_id']" in err and "--triplet-col" in err
    assert _cal(tmp_path, both, preds, "--triplet-col", "triplet") == 2  # the raters compete too
    assert "competing rater columns ['rater', 'rater_id']" in capsys.readouterr().err
    assert _cal(tmp_path, both, preds, "--triplet-col", "triplet", "--rater-col", "rater_id") == 0
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["n_triplets"] == 20
    # any name, named by flags; a flag naming a missing column says so
    odd = _renamed(ratings, triplet="item", rater="who")
    assert _cal(tmp_path, odd, _renamed(preds, triplet="item"), "--triplet-col", "item", "--rater-col", "who",
                "--predictions-triplet-col", "item") == 0  # fmt: skip
    assert _cal(tmp_path, odd, preds, "--triplet-col", "nope", "--rater-col", "who") == 2
    assert "nope" in capsys.readouterr().err


def test_repeated_ratings_count_once(tmp_path):
    ratings, preds = _world(seed=5, n=20)
    again = dict(ratings[0], adherence=1.0, aesthetics=1.0)
    rep = calibrate(_write(tmp_path / "r.parquet", ratings + [again]), _write(tmp_path / "p.parquet", preds))
    assert rep["excluded"]["ratings_duplicate"] == 1 and rep["n_ratings"] == len(ratings)
    ref = calibrate(_write(tmp_path / "r2.parquet", ratings[1:] + [again]), _write(tmp_path / "p2.parquet", preds))
    assert rep["axes"] == ref["axes"]  # the later row is the one that counts


def test_one_rater_or_no_overlap_says_what_it_did(tmp_path, capsys):
    ratings, preds = _world(seed=6, n=40)
    solo = [dict(r, rater="only") for r in ratings if r["rater"] == ratings[0]["rater"]]
    assert _cal(tmp_path, solo, preds) == 0
    out = capsys.readouterr().out
    assert "one rater only (only)" in out and "no de-biasing was possible" in out and "used as rated" in out
    rep = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert rep["debias"]["debiased"] is False and rep["rater_bias"]["adherence"] == {"only": 0.0}
    # a rater who shares no triplet with anyone else keeps bias 0, and the report names them
    island = ratings + [{"triplet": "t_new", "rater": "island", "adherence": 2.0, "aesthetics": 2.0, "category": "add"}]
    rep = calibrate(_write(tmp_path / "i.parquet", island), _write(tmp_path / "ip.parquet", preds))
    assert rep["debias"]["raters_without_overlap"] == ["island"] and rep["rater_bias"]["adherence"]["island"] == 0.0
    assert rep["debias"]["triplets_with_one_rater"] >= 1 and any("island" in n for n in rep["debias"]["notes"])
    assert rep["debias"]["debiased"] is True
