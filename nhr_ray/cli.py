"""Command line: argument parsing only; the work happens in nhr_ray.runtime and friends."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from nhr_ray.config import ConfigError, dump_config, load_config, presets
from nhr_ray.products.rate.cli import register as register_rate


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (default: the packaged simulation preset)")
    p.add_argument("--preset", help=f"start from a packaged preset ({', '.join(presets())})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set edit.attempts_per_instruction=3")
    p.add_argument("--seed", type=int, help="run seed (same as --set seed=S)")
    p.add_argument("--budget-gpu-hours", type=float, help="GPU-hour budget (same as --set scheduler.budget_gpu_hours=H)")


def _load(args) -> "object":
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "budget_gpu_hours", None) is not None:
        overrides.append(f"scheduler.budget_gpu_hours={args.budget_gpu_hours}")
    return load_config(args.config, preset=args.preset, overrides=overrides)


def cmd_run(args) -> int:
    from nhr_ray.runtime.pipeline import NothingToDo, RunError, run

    cfg = _load(args)
    try:
        result = run(cfg, args.out)
    except NothingToDo as e:  # a finished run given no more budget: not an error
        print(f"nhr-ray: {e}", file=sys.stderr)
        return 0
    except RunError as e:
        print(f"nhr-ray: run failed: {e}", file=sys.stderr)
        return 1
    print(result["table"])
    print("\n" + run_summary(result["manifest"], args.out))
    return 0


def run_summary(m: dict, out) -> str:
    """The run's last line: triplets, wall time, busy GPU-hours (work done) and reserved GPU-hours
    (GPUs held by the run's actors, busy or idle: what the cluster bills), and the simulated roles.
    A simulated role's busy GPU-hours are the simulation's estimate of what the call would cost, not
    a measurement: the line says so."""
    gh = m["gpu_hours"]  # no ratio: the simulation's busy hours are virtual, its reserved hours wall time
    busy, reserved = gh["busy_gpu_hours"], gh.get("reserved_gpu_hours", 0.0)
    sim = m.get("simulated_roles", [])
    sim_h = sum(h for r, h in gh.get("by_role_gpu_hours", {}).items() if r in sim)
    est = "" if sim_h <= 0 else " (simulated estimate)" if sim_h >= busy * 0.9999 else f" ({sim_h:.2f} of them simulated estimates)"
    return (f"{sum(v for k, v in m['triplets'].items() if k.startswith('final_'))} triplets in {out}/data "
            f"({m['wall_seconds']:.1f} s, {busy:.2f} busy GPU-hours{est}, {reserved:.2f} reserved GPU-hours)"
            + (f" (SIMULATED: {', '.join(sim)})" if sim else "")
            + (f" (TEST FAULT {m['test_fault']}: wrong on purpose)" if m.get("test_fault") else ""))


def cmd_config(args) -> int:
    cfg = _load(args)
    if args.json:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        print(dump_config(cfg), end="")
    return 0


def cmd_backends(args) -> int:
    from nhr_ray.roles import list_backends

    for role, items in list_backends().items():
        print(f"{role}:")
        for name, desc in items:
            print(f"  {name:<16} {desc}")
    return 0


def cmd_calibrate(args) -> int:
    from nhr_ray.products.calibrate import calibrate, write_report
    from nhr_ray.products.score import simulated_note
    from nhr_ray.products.ratings import DROPPED
    from nhr_ray.products.tables import InputError

    sweep = [float(x) for x in args.sweep.split(",")] if args.sweep else None
    try:
        report = calibrate(args.ratings, args.predictions, threshold=args.threshold, sweep=sweep, run_dir=args.run,
                           triplet_col=args.triplet_col, rater_col=args.rater_col,
                           predictions_triplet_col=args.predictions_triplet_col,
                           allow_simulated_judge=args.allow_simulated_judge, judge=args.judge)  # fmt: skip
    except InputError as e:
        print(f"nhr-ray calibrate: {e}", file=sys.stderr)
        return 2
    paths = write_report(report, args.out)
    if (report["judge"] or {}).get("simulated_judge"):
        print(simulated_note(report["judge"]), end="")
    for a, m in report["axes"].items():
        rho = "n/a" if m["spearman"] is None else f"{m['spearman']:.3f}"
        print(f"{a:<11} MAE {m['mae']:.3f}  Spearman {rho}")
    c = report["classifier"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"threshold {c['threshold']}: precision {fmt(c['precision'])} recall {fmt(c['recall'])} "
          f"F1 {fmt(c['f1'])} accuracy {fmt(c['accuracy'])}  (n={report['n_triplets']} triplets, "
          f"{report['n_ratings']} ratings by {report['n_raters']} raters)")
    for reason, k in report["excluded"].items():
        if k:
            print(f"dropped {k}: {reason} ({DROPPED.get(reason, reason)})")
    for note in report["debias"]["notes"] + report["notes"]:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_export(args) -> int:
    from nhr_ray.products.export import ExportError, export

    try:
        summary = export(args.run_dir, args.format, args.out, split_by=args.split_by, with_masks=args.with_masks,
                         drop_extra=args.drop_extra, min_margin=args.min_margin, threshold=args.threshold)
    except ExportError as e:
        print(f"nhr-ray export: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_score(args) -> int:
    from nhr_ray.products.score import score_dataset, table4_row
    from nhr_ray.products.tables import InputError

    cfg = _load(args)
    try:
        r = score_dataset(args.dataset, cfg, n=args.n, seed=args.sample_seed, source_col=args.source_col,
                          edited_col=args.edited_col, instruction_col=args.instruction_col,
                          allow_simulated_judge=args.allow_simulated_judge)
    except InputError as e:
        print(f"nhr-ray score: {e}", file=sys.stderr)
        return 2
    print(table4_row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


def cmd_report(args) -> int:
    from nhr_ray.products.export import ExportError
    from nhr_ray.products.report import write_report

    try:
        path = write_report(args.run_dir, args.out)
    except ExportError as e:
        print(f"nhr-ray report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def cmd_tune_judge(args) -> int:
    from nhr_ray.products.tune.cli import run

    return run(args)


def _calibrate_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="judge a validator against human ratings (MAE, Spearman, precision/recall)")
    p.add_argument("ratings", help="Parquet/CSV/JSONL rows: triplet, rater, adherence, aesthetics[, category, run_id] "
                   "(also triplet_id / sample_id and rater_id / annotator / annotator_id)")
    p.add_argument("--predictions", help="Parquet/CSV/JSONL rows: triplet, adherence, aesthetics (default with --run: "
                   "the validator scores the run recorded)")
    p.add_argument("--run", help="the run the ratings are of: refuses ratings of another run, drops ids it does not hold")
    p.add_argument("--triplet-col", help="the ratings' triplet id column (default: the one of triplet, triplet_id, sample_id)")
    p.add_argument("--rater-col", help="the ratings' rater column (default: the one of rater, rater_id, annotator, annotator_id)")
    p.add_argument("--predictions-triplet-col", help="the predictions' triplet id column (default: as for the ratings)")
    p.add_argument("--out", required=True, help="directory for calibration.json and the PNG plots")
    p.add_argument("--threshold", type=float, default=4.7, help="validator threshold on both axes (default 4.7)")
    p.add_argument("--sweep", help="comma-separated thresholds to sweep (default 1.0, 1.1, ..., 5.0)")
    p.add_argument("--allow-simulated-judge", action="store_true",
                   help="with --run: calibrate the scores a simulated validator recorded on images the simulation did not "
                   "make (refused otherwise; the output then says so)")
    p.add_argument("--judge", help="with --run: the scores one judge of the run's ensemble validator recorded "
                   "(attempts table, validation_judges), not the combined ones: that judge's calibration, for "
                   "judging.ensemble.judges[].calibration")
    p.set_defaults(func=cmd_calibrate)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nhr-ray", description="Mine image-editing triplets with no human in the loop, on Ray.")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="mine a dataset")
    _config_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("config", help="print the effective config")
    _config_args(p)
    p.add_argument("--show", action="store_true", help="print it (the default)")
    p.add_argument("--json", action="store_true", help="as JSON instead of YAML")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser("backends", help="list registered backends by role")
    p.set_defaults(func=cmd_backends)
    _calibrate_parser(sub)
    p = sub.add_parser("export", help="export a run as NHR-Edit triplets, DPO pairs, KTO labels or a curriculum")
    p.add_argument("run_dir", help="a finished run's --out directory")
    p.add_argument("--format", required=True, choices=["nhr-edit", "dpo", "kto", "curriculum"])
    p.add_argument("--out", required=True, help="new directory for the export")
    p.add_argument("--split-by", choices=["category"], help="one subset per edit category")
    p.add_argument("--with-masks", action="store_true", help="add the low-level check's changed-pixel mask as an image column")
    p.add_argument("--drop-extra", action="store_true", help="nhr-edit: only NHR-Edit's columns, without our scores and lineage")
    p.add_argument("--min-margin", type=float, default=0.5, help="dpo: least validator-score gap between chosen and rejected")
    p.add_argument("--threshold", type=float, help="kto: desirable when both scores reach this (default: the run's validation thresholds)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("score", help="score a random sample of any triplet dataset with the validator (paper Table 4)")
    p.add_argument("dataset", help="a Parquet file, a folder of them, or a glob")
    _config_args(p)
    p.add_argument("--n", type=int, default=5000, help="rows to sample (default 5000)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the row sample (default 0)")
    p.add_argument("--source-col", default="source_image")
    p.add_argument("--edited-col", default="edited_image")
    p.add_argument("--instruction-col", default="edit_instruction")
    p.add_argument("--json", help="also write the result as JSON here")
    p.add_argument("--allow-simulated-judge", action="store_true",
                   help="score with the simulated validator data the simulation did not make (refused otherwise; the "
                   "output then says so)")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("tune-judge", help="tune a validator on human ratings: LoRA on Qwen2.5-VL, or a Gemini tuning job")
    from nhr_ray.products.tune.cli import add_arguments as tune_arguments

    tune_arguments(p)
    p.set_defaults(func=cmd_tune_judge)
    p = sub.add_parser("report", help="write a self-contained static HTML report of a run")
    p.add_argument("run_dir", help="a finished run's --out directory")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.set_defaults(func=cmd_report)
    register_rate(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"nhr-ray: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
