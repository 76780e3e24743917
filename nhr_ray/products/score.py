"""`nhr-ray score DATASET --n 5000`: the paper's Table 4 row for any Parquet dataset of triplets.

A reproducible random sample (a seeded draw of row indices over the whole dataset, read row group
by row group, so only the row groups that hold a sampled row are read) is scored by the configured
validator backend in-process, with the same judge profile (scoring prompt and untrusted-answer
parser) as the mining run's validator. Reported: mean adherence, mean aesthetics and the mean of the
per-triplet geometric mean over the rows that could be scored, and a count of every row that could not (undecodable or
missing image, missing instruction, unparseable or failed answer), so n = scored + unscorable.
"""

from __future__ import annotations

import glob
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq

from nhr_ray.config.cluster import SIM
from nhr_ray.io.images import ImageRejected, decode
from nhr_ray.judges.profiles import role_profile
from nhr_ray.products.provenance import FLAG, check_simulated_judge, dataset_simulated_roles, made_by_simulation
from nhr_ray.products.tables import InputError
from nhr_ray.records import geometric_score
from nhr_ray.roles import BackendContext, build_backend
from nhr_ray.stages.validation import ask_grouped


def dataset_files(dataset: str) -> list[Path]:
    p = Path(dataset)
    if p.is_dir():
        files = sorted(p.rglob("*.parquet"))
    elif p.is_file():
        files = [p]
    else:
        files = sorted(Path(f) for f in glob.glob(dataset, recursive=True))
    files = [f for f in files if not f.name.startswith(".")]
    if not files:
        raise InputError(f"{dataset}: no Parquet files")
    return files


def sample_rows(files: list[Path], n: int, seed: int, columns: list[str]) -> Iterator[tuple[int, dict]]:
    """(global row index, row) for a seeded sample of min(n, total) rows, in dataset order."""
    metas = [pq.ParquetFile(f) for f in files]
    for f, m in zip(files, metas):
        missing = [c for c in columns if c not in m.schema_arrow.names]
        if missing:
            raise InputError(f"{f} lacks column(s) {missing}; it has {m.schema_arrow.names} (see --source-col etc.)")
    total = sum(m.metadata.num_rows for m in metas)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    start = 0
    for m in metas:
        for g in range(m.metadata.num_row_groups):
            rows = m.metadata.row_group(g).num_rows
            lo, hi = np.searchsorted(chosen, [start, start + rows])
            if hi > lo:
                table = m.read_row_group(g, columns=columns)
                for idx in chosen[lo:hi]:
                    yield int(idx), table.slice(int(idx - start), 1).to_pylist()[0]
            start += rows


def _image(value, max_pixels: int):
    data = value.get("bytes") if isinstance(value, dict) else value
    if not data:
        raise ImageRejected("missing_image")
    return decode(data, max_pixels)


def score_dataset(dataset: str, cfg, n: int = 5000, seed: int = 0, source_col: str = "source_image",
                  edited_col: str = "edited_image", instruction_col: str = "edit_instruction",
                  batch_size: int = 16, allow_simulated_judge: bool = False) -> dict[str, Any]:  # fmt: skip
    rc = cfg.role("validator")
    if cfg.judging.ensemble is not None:
        raise InputError("the config names an ensemble validator (judging.ensemble); `score` asks one judge: give it a "
                         "config whose roles.validator is that judge (a score per judge is what the ensemble combines)")
    files = dataset_files(dataset)
    sim_roles = dataset_simulated_roles(files)
    made_by_sim = made_by_simulation(sim_roles)
    if rc.backend == SIM:  # the simulation's judge on data it did not make: refused unless asked
        check_simulated_judge(f"dataset {dataset}", sim_roles, allow_simulated_judge,
                              "Score it with a real validator (a config or preset naming roles.validator.backend)")
    ctx = BackendContext(role="validator", run_seed=cfg.seed, num_gpus=rc.num_gpus, sim=cfg.sim, run_config=cfg)
    backend = build_backend("validator", rc.backend, rc.options, ctx)
    backend.setup()
    profile = role_profile(cfg, "validator")
    unscorable: Counter = Counter()
    scores: list[tuple[float, float]] = []
    sampled = 0
    maxpix = cfg.output.max_image_pixels
    try:
        batch = []
        for idx, row in sample_rows(files, n, seed, [source_col, edited_col, instruction_col]):
            sampled += 1
            text = row[instruction_col]
            if not isinstance(text, str) or not text.strip():
                unscorable["missing_instruction"] += 1
                continue
            try:
                src = _image(row[source_col], maxpix)
            except ImageRejected as e:
                unscorable[f"source_{e}"] += 1
                continue
            try:
                edt = _image(row[edited_col], maxpix)
            except ImageRejected as e:
                unscorable[f"edited_{e}"] += 1
                continue
            batch.append(profile.requests(f"row{idx}", text, src, edt))
            if len(batch) >= batch_size:
                _ask(backend, profile, batch, scores, unscorable)
                batch = []
        if batch:
            _ask(backend, profile, batch, scores, unscorable)
    finally:
        backend.teardown()
    arr = np.array(scores, dtype=float).reshape(-1, 2)
    geo = [geometric_score(a, b) for a, b in scores]
    return {"dataset": str(dataset), "validator": rc.backend, "simulated_judge": rc.backend == SIM,
            "allow_simulated_judge": allow_simulated_judge, "made_by_simulation": made_by_sim, "seed": seed,
            "sampled": sampled, "scored": len(scores),
            "unscorable": dict(unscorable), "mean_adherence": float(arr[:, 0].mean()) if len(arr) else None,
            "mean_aesthetics": float(arr[:, 1].mean()) if len(arr) else None,
            "mean_geometric": float(np.mean(geo)) if geo else None}  # fmt: skip


def _ask(backend, profile, batch, scores, unscorable) -> None:
    for answers in ask_grouped(backend, batch):
        if any(a.error for a in answers):
            unscorable["validator_error"] += 1
            continue
        p = profile.parse([a.text for a in answers])
        if p.ok:
            scores.append((p.value["adherence"], p.value["aesthetics"]))
        else:
            unscorable[f"answer_{p.reason}"] += 1


def table4_row(r: dict[str, Any]) -> str:
    f = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    head = f"{'dataset':<40} {'adherence':>9} {'aesthetics':>10} {'geo mean':>8} {'scored':>7} {'unscorable':>10}"
    name = Path(r["dataset"]).name or r["dataset"]
    row = (f"{name[:40]:<40} {f(r['mean_adherence']):>9} {f(r['mean_aesthetics']):>10} {f(r['mean_geometric']):>8} "
           f"{r['scored']:>7} {sum(r['unscorable'].values()):>10}")  # fmt: skip
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(r["unscorable"].items()))
    return simulated_note(r) + head + "\n" + row + (f"\nunscorable: {reasons}" if reasons else "")


def simulated_note(r: dict[str, Any]) -> str:
    """The line above a simulated judge's Table 4 row: whose numbers these are."""
    if not r.get("simulated_judge"):
        return ""
    where = ("data the simulation made" if r.get("made_by_simulation")
             else f"data the simulation did NOT make ({FLAG})")  # fmt: skip
    return f"SIMULATED validator (roles.validator.backend: sim) on {where}: the simulation's numbers, not a judge's\n"
