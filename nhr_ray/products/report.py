"""`nhr-ray report RUN_DIR [--out FILE]`: one self-contained static HTML page about a run.

Everything is inline (thumbnails as data URIs, charts as SVG, CSS in a <style>), and there is no
script, so the file can be mailed, archived or opened offline. Every piece of model text (scene
prompts, instructions, the judges' raw answers) is HTML-escaped: it is untrusted.

Sections: funnel (chart and the paper's Table 3 layout), GPU-hours and API cost by role, success rate
by category, validator score histograms, a gallery of kept triplets and a gallery of rejects grouped
by reason with the judge's own words. Shards are streamed; only counters, score lists and the few
gallery rows are held.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from nhr_ray.io.images import ImageRejected, decode
from nhr_ray.products.export import Run
from nhr_ray.products.provenance import manifest_simulated_roles
from nhr_ray.products.svg import hbars, histogram

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f2f2f2}td.n{text-align:right}.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;padding:8px;width:360px;font-size:12px}.card img{max-width:170px;max-height:170px}
.raw{font-family:monospace;white-space:pre-wrap;background:#f8f8f8;padding:4px;max-height:90px;overflow:auto}
h2{border-bottom:1px solid #ddd;padding-bottom:4px}
.simulated{background:#fff3cd;border:2px solid #c77c00;padding:8px 12px;font-size:15px}"""


def thumb(struct: dict | None, max_side: int = 170, max_pixels: int = 64_000_000) -> str | None:
    """A PNG data URI of a downscaled image, or None when it is missing or undecodable."""
    if not struct or not struct.get("bytes"):
        return None
    try:
        px = decode(struct["bytes"], max_pixels)
    except ImageRejected:
        return None
    im = Image.fromarray(px)
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def simulated_banner(manifest: dict[str, Any]) -> str:
    """A visible banner at the top when any role of the run was simulated (role names escaped)."""
    roles = manifest_simulated_roles(manifest)
    if not roles:
        return ""
    return (f'<p class="simulated"><b>SIMULATED DATA, NOT FOR TRAINING.</b> These roles ran on the simulation '
            f"(backend <code>sim</code>), not on real models: {escape(', '.join(roles))}. Their images, text, scores "
            "and GPU-hours are the simulation's.</p>")


def _img(uri: str | None, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">' if uri else f'<span class="missing">[{escape(alt)}: no image]</span>'


def _table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f'<td class="n">{v:,.2f}</td>'
        if isinstance(v, int):
            return f'<td class="n">{v:,}</td>'
        return f"<td>{escape('' if v is None else str(v))}</td>"

    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows) + "</table>")  # fmt: skip


def _scan(run: Run, per_reason: int) -> dict[str, Any]:
    cats: dict[str, Counter] = defaultdict(Counter)
    adh, aes = [], []
    rejects: dict[str, list[dict]] = defaultdict(list)
    reasons: Counter = Counter()
    cols = ["attempt_id", "source_id", "edit_instruction", "category", "kept", "final_stage", "final_reason", "adherence",
            "aesthetics", "prefilter_raw", "validation_raw", "edited_image"]  # fmt: skip
    for b in run.batches("attempts", cols, 256):
        for r in b.to_pylist():
            c = cats[r["category"]]
            c["attempts"] += 1
            c["kept"] += bool(r["kept"])
            if r["adherence"] is not None:
                adh.append(r["adherence"])
                aes.append(r["aesthetics"])
            if not r["kept"]:
                key = f"{r['final_stage']}: {r['final_reason']}"
                reasons[key] += 1
                if len(rejects[key]) < per_reason:
                    r["raw"] = r["validation_raw"] if r["final_stage"] == "validation" else r["prefilter_raw"]
                    r["edited_uri"] = thumb(r.pop("edited_image"))
                    rejects[key].append(r)
    return {"cats": cats, "adh": adh, "aes": aes, "rejects": rejects, "reasons": reasons}


def _source_thumbs(run: Run, wanted: set[str]) -> dict[str, str | None]:
    out = {}
    for b in run.batches("sources", ["source_id", "image"], 64):
        for r in b.to_pylist():
            if r["source_id"] in wanted:
                out[r["source_id"]] = thumb(r["image"])
    return out


def _gallery(run: Run, per_kind: int) -> list[dict]:
    got: Counter = Counter()
    keep = []
    cols = ["sample_id", "kind", "source_image", "edited_image", "edit_instruction", "category", "adherence", "aesthetics",
            "score", "lineage", "prompt"]  # fmt: skip
    for b in run.batches("triplets", cols, 64):
        for r in b.to_pylist():
            if got[r["kind"]] < per_kind:
                got[r["kind"]] += 1
                r["src_uri"], r["edt_uri"] = thumb(r.pop("source_image")), thumb(r.pop("edited_image"))
                keep.append(r)
    return keep


def _bucket_mix(run: Run) -> str:
    """The image sizes of the run's rendered sources (read from the source shards, so a resumed run
    counts every source) beside the share the configured bucket draw aims at. Under sources.scale
    two buckets may round to one size; its row names both."""
    from nhr_ray.stages.sources import bucket_label, bucket_weights, scaled_size

    src = run.config.sources
    aim: dict[tuple[int, int], float] = defaultdict(float)
    names: dict[tuple[int, int], list[str]] = defaultdict(list)
    for (w, h), p in zip(map(tuple, src.buckets), bucket_weights(src.buckets, src.bucket_draw)):
        aim[scaled_size(w, h, src.scale)] += float(p)
        names[scaled_size(w, h, src.scale)].append(bucket_label(w, h))
    mix: Counter = Counter()
    for b in run.batches("sources", ["img_width", "img_height"], 1024):
        mix.update((r["img_width"], r["img_height"]) for r in b.to_pylist())
    total = sum(mix.values())
    if not total:
        return "<p>No sources.</p>"
    rows = [[bucket_label(*size), ", ".join(names[size]), mix.get(size, 0), 100.0 * mix.get(size, 0) / total, 100.0 * p]
            for size, p in aim.items()]  # fmt: skip
    other = total - sum(mix.get(size, 0) for size in aim)
    if other:  # photos, or sources of another bucket list
        rows.append(["other sizes", "", other, 100.0 * other / total, 0.0])
    head = ["size (w x h)", "bucket", "images", "share %", "target %"]
    return f"<p>drawn: {escape(src.bucket_draw)}, scale {src.scale:g}</p>" + _table(head, rows)


def build_report(run_dir, per_kind: int = 6, per_reason: int = 3) -> str:
    run = Run(run_dir)
    m, f = run.manifest, run.funnel
    scan = _scan(run, per_reason)
    src = _source_thumbs(run, {r["source_id"] for rs in scan["rejects"].values() for r in rs})
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nhr-ray run report: {escape(run.dir.name)}</title>",
             f"<style>{CSS}</style></head><body>{simulated_banner(m)}<h1>nhr-ray run report</h1>",
             f"<p>{escape(str(run.dir))} · seed {escape(str(m.get('seed')))} · started {escape(str(m.get('started')))} · "
             f"{m.get('wall_seconds', 0):.0f} s wall</p>"]  # fmt: skip
    table = f.get("table", [])
    parts.append("<h2>Funnel</h2>")
    parts.append(hbars([(r["stage"], r["count"], f"{r['count']:,}") for r in table]))
    parts.append(_table(["stage", "model", "count", "change %", "paper %"],
                        [[r["stage"], r.get("model"), r["count"], r.get("change_pct"), r.get("paper_change_pct")] for r in table]))  # fmt: skip
    parts.append("<h2>Aspect buckets</h2>")
    parts.append(_bucket_mix(run))
    gh = m.get("gpu_hours", {})
    api = m.get("api_usage", {})
    roles = sorted(set(gh.get("by_role_gpu_hours", {})) | set(api))
    sim = manifest_simulated_roles(m) or []
    parts.append("<h2>Cost by role</h2>")
    parts.append(_table(["role", "GPU-hours", "API calls", "input tokens", "output tokens", "API USD"],
                        [[f"{r} (simulated: estimated GPU-hours)" if r in sim else r, float(gh.get("by_role_gpu_hours", {}).get(r, 0.0)), int(api.get(r, {}).get("api_calls", 0)),
                          int(api.get(r, {}).get("input_tokens", 0)), int(api.get(r, {}).get("output_tokens", 0)),
                          float(api.get(r, {}).get("usd", 0.0))] for r in roles]))  # fmt: skip
    parts.append(f"<p>busy GPU-hours: {gh.get('busy_gpu_hours', 0):.2f} · reserved GPU-hours (the bill): "
                 f"{gh.get('reserved_gpu_hours', 0):.2f}</p>")
    parts.append("<h2>Success rate by category</h2>")
    crow = sorted(scan["cats"].items(), key=lambda kv: kv[0] or "")
    parts.append(hbars([(c or "?", v["kept"] / v["attempts"], f"{100 * v['kept'] / v['attempts']:.1f} %") for c, v in crow]))
    parts.append(_table(["category", "attempts", "passed validation", "rate %"],
                        [[c, v["attempts"], v["kept"], 100.0 * v["kept"] / v["attempts"]] for c, v in crow]))  # fmt: skip
    v = run.config.validation
    parts.append("<h2>Validator scores of judged attempts</h2><div class=\"grid\">")
    parts.append(histogram(scan["adh"], 1.0, 5.0, title="adherence", mark=v.min_adherence))
    parts.append(histogram(scan["aes"], 1.0, 5.0, title="aesthetics", mark=v.min_aesthetics) + "</div>")
    parts.append("<h2>Kept triplets</h2><div class=\"grid\">")
    for r in _gallery(run, per_kind):
        parts.append(f"<div class=\"card kept\">{_img(r['src_uri'], 'source')} {_img(r['edt_uri'], 'edited')}"
                     f"<p><b>{escape(r['edit_instruction'] or '')}</b></p>"
                     f"<p>{escape(r['kind'])} · {escape(r['category'] or '')} · adherence {r['adherence']:.2f} · "
                     f"aesthetics {r['aesthetics']:.2f} · score {r['score']:.2f}</p>"
                     f"<p>lineage <code>{escape(r['lineage'] or '')}</code></p></div>")  # fmt: skip
    parts.append("</div><h2>Rejects by reason</h2>")
    for key, n in scan["reasons"].most_common():
        parts.append(f"<h3>{escape(key)} ({n:,})</h3><div class=\"grid\">")
        for r in scan["rejects"][key]:
            parts.append(f"<div class=\"card reject\">{_img(src.get(r['source_id']), 'source')} {_img(r['edited_uri'], 'edited')}"
                         f"<p><b>{escape(r['edit_instruction'] or '')}</b></p><p><code>{escape(r['attempt_id'])}</code></p>"
                         f"<div class=\"raw\">{escape(r['raw'] or '(no model text)')}</div></div>")  # fmt: skip
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir, out=None) -> Path:
    path = Path(out) if out else Path(run_dir) / "report.html"
    path.write_text(build_report(run_dir), encoding="utf-8")
    return path
