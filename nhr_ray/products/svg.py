"""Tiny inline-SVG charts for the static run report (no scripts, no external assets)."""

from __future__ import annotations

from html import escape


def hbars(items: list[tuple[str, float, str]], width: int = 760, bar_h: int = 22, label_w: int = 170) -> str:
    """Horizontal bars: (label, value, note shown after the bar)."""
    top = max([v for _, v, _ in items] + [1e-9])
    h = bar_h * len(items) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" class="chart">']
    for i, (label, v, note) in enumerate(items):
        y = 4 + i * bar_h
        w = max(1.0, (width - label_w - 170) * v / top)
        out.append(f'<text x="{label_w - 6}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" font-size="12">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 5}" fill="#4a78b5"/>')
        out.append(f'<text x="{label_w + w + 5:.1f}" y="{y + bar_h * 0.7:.1f}" font-size="12">{escape(note)}</text>')
    return "".join(out) + "</svg>"


def histogram(values: list[float], lo: float, hi: float, bins: int = 20, width: int = 360, height: int = 160,
              title: str = "", mark: float | None = None) -> str:  # fmt: skip
    counts = [0] * bins
    for v in values:
        if v is not None and lo <= v <= hi:
            counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top, pad, bw = max(counts + [1]), 24, (width - 20) / bins
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="chart">',
           f'<text x="10" y="14" font-size="12">{escape(title)} (n={len(values)})</text>']  # fmt: skip
    for i, c in enumerate(counts):
        bh = (height - 2 * pad) * c / top
        out.append(f'<rect x="{10 + i * bw:.1f}" y="{height - pad - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" fill="#6a9f58"/>')
    if mark is not None:
        x = 10 + (mark - lo) / (hi - lo) * (width - 20)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pad}" y2="{height - pad}" stroke="#c33" stroke-dasharray="3 2"/>')
    out.append(f'<text x="10" y="{height - 6}" font-size="11">{lo:g}</text>')
    out.append(f'<text x="{width - 10}" y="{height - 6}" font-size="11" text-anchor="end">{hi:g}</text>')
    return "".join(out) + "</svg>"
