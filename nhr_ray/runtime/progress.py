"""Live progress: a rich table on a terminal, a log line every 10 s elsewhere (e.g. under ray job submit)."""

from __future__ import annotations

import sys
import time
from typing import Any

from nhr_ray.stages import table


def _stages() -> list[str]:
    """The streaming phase's stages, in pipeline order (the stage table's)."""
    return [s.name for s in table.stages("stream")]


class Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()
        self.live = None
        self.last = 0.0
        self.t0 = time.monotonic()
        if self.tty:
            from rich.live import Live

            self.live = Live(refresh_per_second=4, transient=True)
            self.live.start()

    def _table(self, funnel, stats: dict[str, Any], exhausted: bool):
        from rich.table import Table

        t = Table(title=f"nhr-ray mining  {time.monotonic() - self.t0:5.0f}s")
        for c in ("stage", "in", "kept", "dropped", "failed"):
            t.add_column(c, justify="right" if c != "stage" else "left")
        for st in _stages():
            x = funnel.tallies.get(st)
            if x:
                t.add_row(st, str(x.n_in), str(x.kept), str(sum(x.dropped.values())), str(sum(x.failed.values())))
        kept = funnel.tallies["validation"].kept if "validation" in funnel.tallies else 0
        t.caption = f"edits kept so far (validated; triplets are made from them at the end): {kept}"
        if stats:
            spent, budget = stats.get("spent_gpu_hours", 0.0), stats.get("budget_gpu_hours")
            t.caption += "\n" + (
                f"GPU-h {spent:.2f}" + (f" / {budget:.2f}" if budget else "")
                + f"  jobs issued {stats.get('jobs_issued', 0)}  pending {stats.get('jobs_pending', 0)}"
                + ("  [budget spent]" if exhausted else "")
            )
        return t

    def update(self, funnel, stats: dict[str, Any], exhausted: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.live is not None:
            if now - self.last > 0.25:
                self.live.update(self._table(funnel, stats, exhausted))
                self.last = now
        elif now - self.last > 10:
            self.last = now
            parts = [f"{st} {funnel.tallies[st].kept}/{funnel.tallies[st].n_in}" for st in _stages() if st in funnel.tallies]
            kept = funnel.tallies["validation"].kept if "validation" in funnel.tallies else 0
            print(f"[nhr-ray {now - self.t0:.0f}s] " + "  ".join(parts)
                  + f"  edits kept {kept}  GPU-h {stats.get('spent_gpu_hours', 0.0):.2f}", flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
