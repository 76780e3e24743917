"""Exports of a real (small) simulation run: NHR-Edit layout with HF Image features, DPO, KTO,
curriculum, split by category, masks; each checked against the run's own shards."""

import glob
import io
import json
from collections import Counter, defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import small_config
from nhr_ray.cli import main
from nhr_ray.products.export import ExportError, export


@pytest.fixture(scope="module")
def run_dir(ray_local, shared_run, tmp_path_factory):
    """small_config()'s run, mined once per session (conftest.shared_run); this module's own copy."""
    return shared_run("small", small_config(), copy_to=tmp_path_factory.mktemp("exp") / "run")[0]


def _rows(run_dir, prefix, columns=None):
    return pq.read_table(sorted(glob.glob(str(run_dir / "data" / f"{prefix}-*.parquet"))), columns=columns).to_pylist()


def _read(path_glob):
    return pq.read_table(sorted(glob.glob(str(path_glob)))).to_pylist()


def _px(struct):
    return np.asarray(Image.open(io.BytesIO(struct["bytes"])).convert("RGB")).astype(int)


def test_nhr_edit_loads_with_image_features(run_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    assert main(["export", str(run_dir), "--format", "nhr-edit", "--out", str(tmp_path / "e")]) == 0
    trip = {r["sample_id"]: r for r in _rows(run_dir, "triplets")}
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "e" / "data" / "train-*.parquet"), split="train")
    assert len(ds) == len(trip) and ds.column_names[:4] == ["sample_id", "source_image", "edit_instruction", "edited_image"]
    assert isinstance(ds.features["source_image"], datasets.Image) and isinstance(ds.features["edited_image"], datasets.Image)
    row = ds[0]
    assert isinstance(row["edited_image"], Image.Image) and row["edited_image"].size == (row["img_width"], row["img_height"])
    assert row["score"] == trip[row["sample_id"]]["score"] and "lineage" in ds.column_names
    card = (tmp_path / "e" / "README.md").read_text()
    assert card.startswith("---\n") and "plausibility gate" in card and "Category mix" in card and "| ray |" in card
    # the card's YAML makes the folder itself loadable
    assert len(datasets.load_dataset(str(tmp_path / "e"), split="train")) == len(trip)


def test_nhr_edit_split_masks_and_drop_extra(run_dir, tmp_path):
    s = export(run_dir, "nhr-edit", tmp_path / "e", split_by="category", with_masks=True, drop_extra=True)
    trip = {r["sample_id"]: r for r in _rows(run_dir, "triplets")}
    cats = Counter(r["category"] for r in trip.values())
    assert s["subsets"] == dict(cats) and s["rows_without_mask"] == 0
    thr = small_config().lowlevel.pixel_threshold
    for cat in cats:
        rows = _read(tmp_path / "e" / cat / "train-*.parquet")
        assert {r["category"] for r in rows} == {cat} and len(rows) == cats[cat]
        assert set(rows[0]) == {"sample_id", "source_image", "edit_instruction", "edited_image", "category", "style",
                                "img_width", "img_height", "kind", "mask"}  # fmt: skip
        r = rows[0]
        want = (np.abs(_px(r["source_image"]) - _px(r["edited_image"])).max(axis=2) > thr)
        got = np.asarray(Image.open(io.BytesIO(r["mask"]["bytes"])))
        assert got.shape == want.shape and ((got == 255) == want).all() and set(np.unique(got)) <= {0, 255}
        assert want.any()  # a kept edit changed something
    card = (tmp_path / "e" / "README.md").read_text()
    assert all(f"config_name: {c}" in card for c in cats)
    # a simulated run's card opens (right after its YAML header) with the banner naming every simulated role
    body = card.split("\n---\n", 1)[1].lstrip("\n")
    assert body.startswith("> **SIMULATED DATA, NOT FOR TRAINING.**")
    assert "designer, t2i, gate, editor, prefilter, validator, inverter" in body.splitlines()[0]


def test_card_banner_escapes_and_is_absent_for_an_all_real_run():
    from nhr_ray.products.card import simulated_banner

    assert simulated_banner({"simulated_roles": []}) == []
    (line, _) = simulated_banner({"simulated_roles": ["editor", "<b>x</b>|[y]"]})
    assert "editor, &lt;b&gt;x&lt;/b&gt;\\|\\[y\\]" in line
    # a run written before the key: read from the backends its recorded config names
    assert "gate" in simulated_banner({"config": {"roles": {"gate": {"backend": "sim"}, "t2i": {"backend": "flux"}}}})[0]


def test_the_triplets_and_the_card_say_where_the_scores_come_from(run_dir, tmp_path):
    """Default run (consistency on, composition.rescore off): forwards judged by the validator, inverses
    by the consistency judge, compositions inherit from both parents; the card counts each, even when
    --drop-extra leaves the columns out."""
    trip = {r["sample_id"]: r for r in _rows(run_dir, "triplets")}
    prov = Counter((r["kind"], r["score_source"], r["scored_by"]) for r in trip.values())
    assert set(prov) == {("forward", "judged", "validation"), ("inverse", "judged", "consistency"), ("composed", "inherited", None)}
    for r in trip.values():
        if r["kind"] == "composed":
            assert r["scores_from"] == r["parents"] and len(r["parents"]) == 2
            assert r["adherence"] == min(trip[p]["adherence"] for p in r["parents"])
        else:
            assert r["scores_from"] == []
    s = export(run_dir, "nhr-edit", tmp_path / "e", split_by=None, with_masks=False, drop_extra=True)
    assert {(p["kind"], p["score_source"], p["scored_by"]): p["rows"] for p in s["provenance"]} == dict(prov)
    card = (tmp_path / "e" / "README.md").read_text()
    assert "### Where the scores come from" in card and "**inherited** when the row was not judged itself" in card
    n = prov[("composed", "inherited", None)]
    assert n > 0 and f"| composed | inherited |  | {n} |" in card
    assert f"| inverse | judged | consistency | {prov[('inverse', 'judged', 'consistency')]} |" in card


def test_dpo_pairs(run_dir, tmp_path):
    margin = 0.3
    s = export(run_dir, "dpo", tmp_path / "d", min_margin=margin)
    att = {a["attempt_id"]: a for a in _rows(run_dir, "attempts") if a["score"] is not None and a["edited_image"]}
    src = {r["source_id"]: r["image"] for r in _rows(run_dir, "sources", ["source_id", "image"])}
    by_pair = defaultdict(list)
    for a in att.values():
        by_pair[a["pair_id"]].append(a["score"])
    expected = sum(1 for sc in by_pair.values() for i in range(len(sc)) for j in range(len(sc)) if sc[i] - sc[j] >= margin)
    rows = _read(tmp_path / "d" / "data" / "train-*.parquet")
    assert expected > 0 and len(rows) == expected == sum(s["subsets"].values())
    for r in rows:
        c, w = att[r["chosen_attempt_id"]], att[r["rejected_attempt_id"]]
        assert c["pair_id"] == w["pair_id"] == r["pair_id"] and r["chosen_score"] - r["rejected_score"] >= margin - 1e-12
        assert (r["chosen_score"], r["rejected_score"]) == (c["score"], w["score"])
        assert r["chosen_image"] == c["edited_image"] and r["rejected_image"] == w["edited_image"]
        assert r["source_image"] == src[c["source_id"]] and r["edit_instruction"] == c["edit_instruction"]
    # many hash partitions (as a run bigger than memory gets) give the same rows
    export(run_dir, "dpo", tmp_path / "d2", min_margin=margin, partition_bytes=20_000)
    key = lambda r: (r["chosen_attempt_id"], r["rejected_attempt_id"])  # noqa: E731
    assert sorted(map(key, _read(tmp_path / "d2" / "data" / "train-*.parquet"))) == sorted(map(key, rows))


def test_kto_labels(run_dir, tmp_path):
    s = export(run_dir, "kto", tmp_path / "k", split_by="category")
    funnel = json.loads((run_dir / "funnel.json").read_text())
    rows = _read(tmp_path / "k" / "*" / "train-*.parquet")
    judged = [a for a in _rows(run_dir, "attempts") if a["score"] is not None and a["edited_image"]]
    assert len(rows) == len(judged) == s["desirable"] + s["undesirable"]
    for r in rows:
        assert r["desirable"] == (r["adherence"] >= 4.7 and r["aesthetics"] >= 4.7)
    # desirable at the run's thresholds is exactly what the hard validator kept
    assert s["desirable"] == funnel["stages"]["validation"]["kept"]
    s2 = export(run_dir, "kto", tmp_path / "k2", threshold=4.0)
    assert s2["desirable"] > s["desirable"]


def test_curriculum(run_dir, tmp_path):
    export(run_dir, "curriculum", tmp_path / "c")
    att = _rows(run_dir, "attempts", ["pair_id", "category", "kept"])
    per_cat = defaultdict(lambda: [0, 0])
    per_pair = defaultdict(lambda: [0, 0])
    for a in att:
        per_cat[a["category"]][0] += 1
        per_cat[a["category"]][1] += bool(a["kept"])
        per_pair[a["pair_id"]][0] += 1
        per_pair[a["pair_id"]][1] += bool(a["kept"])
    cats = {c["category"]: c for c in pq.read_table(tmp_path / "c" / "categories.parquet").to_pylist()}
    for cat, (n, k) in per_cat.items():
        assert cats[cat]["attempts"] == n and cats[cat]["successes"] == k
        assert cats[cat]["attempts_per_success"] == (pytest.approx(n / k) if k else None)
    inst = {p["pair_id"]: p for p in pq.read_table(tmp_path / "c" / "instructions.parquet").to_pylist()}
    assert {p: (v["attempts"], v["successes"]) for p, v in inst.items()} == {p: tuple(v) for p, v in per_pair.items()}
    order = pq.read_table(tmp_path / "c" / "triplet_order.parquet").to_pylist()
    trip = {r["sample_id"]: r for r in _rows(run_dir, "triplets", ["sample_id", "kind", "attempt_id"])}
    assert len(order) == len(trip) and [r["rank"] for r in order] == list(range(len(order)))
    d = [r["difficulty"] for r in order]
    assert d == sorted(d) and d[0] < d[-1]
    for r in order:
        if r["kind"] == "forward":
            n, k = per_pair[trip[r["sample_id"]]["attempt_id"].rpartition(".m")[0]]
            assert r["difficulty"] == pytest.approx((n + 1) / (k + 1))


def test_export_errors(run_dir, tmp_path, capsys):
    with pytest.raises(ExportError, match="no run data"):
        export(tmp_path, "nhr-edit", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["export", str(run_dir), "--format", "dpo", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(ExportError, match="drop-extra"):
        export(run_dir, "kto", tmp_path / "y", drop_extra=True)
