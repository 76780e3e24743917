"""The dataset card (README.md) written next to an export: what the data is, how it was mined
(funnel, config, versions) and what it holds (category and kind mix).

Values in its tables come from the run's data and config: every cell is escaped for Markdown and
HTML (one line, pipes and brackets escaped, < > & as entities), so a value can neither break a table
nor add markup; categories outside the known set are counted together as `unknown`."""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from nhr_ray.categories import KNOWN_CATEGORIES
from nhr_ray.products.hf import card_header
from nhr_ray.products.provenance import manifest_simulated_roles
from nhr_ray.stages.table import model_roles

WHAT = {
    "nhr-edit": "Instruction-guided image-editing triplets (source image, edit instruction, edited image) in the "
                "NHR-Edit column layout, mined with no human in the loop by nhr-ray.",
    "dpo": "Preference pairs for DPO: two edits of the same source image and instruction, the one the validator "
           "scored higher is `chosen`.",
    "kto": "Binary feedback for KTO: every validator-judged edit attempt, `desirable` when both validator scores "
           "reach the threshold.",
}  # fmt: skip


def cell(v: Any) -> str:
    """One Markdown table cell: one line, no markup. Backslashes first, so none can escape ours."""
    s = html.escape(" ".join(("" if v is None else str(v)).split()), quote=False)
    for ch in "\\|[]`":
        s = s.replace(ch, "\\" + ch)
    return s


def _table(rows: list[list[Any]], head: list[str]) -> list[str]:
    out = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]


def known_categories(counts: dict[str, int]) -> dict[str, int]:
    """Row counts by category, those outside KNOWN_CATEGORIES summed as 'unknown'."""
    out: Counter = Counter()
    for k, n in counts.items():
        out[k if k in KNOWN_CATEGORIES else "unknown"] += n
    return dict(out)


SCORES = ("`adherence`, `aesthetics` and `score` are **judged** when `scored_by` names the stage whose judge gave "
          "them to this very row (`validation`: the hard validator, stage 8, or `composition.rescore`; `consistency`: "
          "the backward-consistency judge, stage 11). They are **inherited** when the row was not judged itself: "
          "copied from the rows `scores_from` lists (an inverse: its forward's; a composition: the lower of its two "
          "parents' on each axis). Inherited scores are not a measurement of the row; filter on `score_source` "
          "where that matters.")  # fmt: skip


def _provenance(rows: list[dict] | None) -> list[str]:
    """The 'where the scores come from' section: counts by kind and provenance, and what they mean."""
    if not rows:
        return []
    table = [[r["kind"], r["score_source"] or "unknown (older run)", r["scored_by"] or "", r["rows"]] for r in rows]
    return ["### Where the scores come from", "", SCORES, ""] + _table(table, ["kind", "score_source", "scored_by", "rows"]) + [""]


def simulated_banner(manifest: dict[str, Any]) -> list[str]:
    """The card's first lines when any role of the run was simulated: simulated data, not for training."""
    roles = manifest_simulated_roles(manifest)
    if not roles:
        return []
    return [f"> **SIMULATED DATA, NOT FOR TRAINING.** These roles ran on the simulation (backend `sim`), not on real "
            f"models: {cell(', '.join(roles))}. What they made or judged comes from the simulation world.", ""]


def write_card(run, out: Path, fmt: str, summary: dict[str, Any]) -> Path:
    subsets = sorted(summary["subsets"]) or ["data"]
    cfg = run.config
    lines = [card_header(subsets, f"nhr-ray {fmt} export"), *simulated_banner(run.manifest), f"# nhr-ray export: {fmt}", "",
             WHAT[fmt], ""]  # fmt: skip
    lines += ["Load it with `datasets.load_dataset(\"parquet\", data_files=\"<this folder>/data/train-*.parquet\")`"
              " (or one subset's folder); image columns decode as `Image` features.", ""]  # fmt: skip
    lines += ["## Contents", ""] + _table([[s, n] for s, n in sorted(summary["subsets"].items())], ["subset", "rows"]) + [""]
    if summary.get("categories"):
        cats = sorted(known_categories(summary["categories"]).items(), key=lambda kv: (-kv[1], kv[0]))
        lines += ["### Category mix", ""] + _table(cats, ["category", "rows"]) + [""]
    if summary.get("kinds"):
        lines += ["### Kinds", ""] + _table(sorted(summary["kinds"].items()), ["kind", "rows"]) + [""]
    lines += _provenance(summary.get("provenance"))
    other = {k: v for k, v in summary.items() if k not in ("subsets", "categories", "kinds", "provenance")}
    if other:
        lines += ["### Export settings and counts", ""] + _table(sorted(other.items()), ["key", "value"]) + [""]
    table = run.funnel.get("table", [])
    if table:
        rows = [[r["stage"], r.get("model"), r["count"], r.get("change_pct"), r.get("paper_change_pct")] for r in table]
        lines += ["## How it was mined (the run's funnel, paper Table 3 layout)", ""]
        lines += _table(rows, ["stage", "model", "count", "change %", "paper %"]) + [""]
    lines += ["## Configuration", ""]
    lines += _table([["seed", cfg.seed], ["seeds per prompt (N)", cfg.sources.seeds_per_prompt],
                     ["attempts per instruction (M)", cfg.edit.attempts_per_instruction],
                     ["validator thresholds", f"{cfg.validation.min_adherence} / {cfg.validation.min_aesthetics}"],
                     ["low-level threshold", cfg.lowlevel.pixel_threshold],
                     *[[f"roles.{r}.backend", cfg.role(r).backend] for r in model_roles()]],
                    ["setting", "value"]) + [""]  # fmt: skip
    versions = run.manifest.get("versions", {})
    if versions:
        lines += ["## Software versions", ""] + _table(sorted((k, v) for k, v in versions.items() if v), ["package", "version"]) + [""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
