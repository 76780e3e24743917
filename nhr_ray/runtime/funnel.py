"""The run's own Table 3: stage counts in the paper's order, change %, and drops by reason."""

from __future__ import annotations

from typing import Any

from nhr_ray.stages import table
from nhr_ray.stages.base import Tally

class Funnel:
    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}
        self.counts: dict[str, int] = {}

    def tally(self, stage: str) -> Tally:
        return self.tallies.setdefault(stage, Tally(stage))

    def merge(self, t: Tally) -> None:
        self.tally(t.stage).merge(t)

    def balanced(self) -> dict[str, bool]:
        return {k: t.balanced() for k, t in self.tallies.items()}

    def table(self, models: dict[str, str]) -> list[dict[str, Any]]:
        rows, prev = [], None
        for spec in table.funnel_rows():
            stage, paper = spec.funnel_row, spec.paper_pct
            count = self.counts.get(stage)
            if count is None:
                t = self.tallies.get(spec.name)
                count = t.kept if t else 0
            change = None if prev in (None, 0) else round(100.0 * (count - prev) / prev, 2)
            rows.append({"stage": stage, "model": models.get(stage, ""), "count": count,
                         "change_pct": change, "paper_change_pct": paper})
            prev = count
        return rows

    def as_dict(self, models: dict[str, str]) -> dict[str, Any]:
        return {
            "table": self.table(models),
            "stages": {k: t.as_dict() for k, t in self.tallies.items()},
            "balanced": self.balanced(),
        }


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'stage':<22}{'model':<26}{'count':>10}{'change':>10}{'paper':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ch = "" if r["change_pct"] is None else f"{r['change_pct']:+.2f}%"
        pa = "" if r["paper_change_pct"] is None else f"{r['paper_change_pct']:+.2f}%"
        lines.append(f"{r['stage']:<22}{r['model'][:25]:<26}{r['count']:>10}{ch:>10}{pa:>10}")
    return "\n".join(lines)
