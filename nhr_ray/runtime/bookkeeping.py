"""The run's bookkeeping, kept out of the driver loop: API usage by role, the bytes edit chains move
between nodes (locality), and the timeline of the streaming phase."""

from __future__ import annotations

import collections
import time

from nhr_ray.runtime.locality import chain_cross_node_bytes


class Usage:
    """API usage summed by role (tokens, calls, usd)."""

    def __init__(self) -> None:
        self.by_role: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))

    def add(self, role: str, usage: dict[str, float]) -> None:
        for k, v in usage.items():
            self.by_role[role][k] += float(v)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {r: dict(u) for r, u in self.by_role.items()}


class Book:
    """Locality (bytes edit chains move across nodes, by where their actors ran) and the timeline
    (seconds from the pools' start: pools ready, first sources, first draw, first attempts, all
    drawn, loop end)."""

    def __init__(self, driver_node: str | None) -> None:
        self.driver_node = driver_node
        self.locality = {"cross_node_bytes": 0, "attempts": 0}
        self.timeline: dict[str, float] = {}
        self.t0 = time.monotonic()

    def mark(self, what: str) -> None:
        self.timeline.setdefault(what, round(time.monotonic() - self.t0, 2))

    def chain(self, nodes: list[str | None], tail: str | None, src_bytes: int, edit_bytes: int, attempts: int) -> None:
        """An edit chain submitted: its source images and edits travel between these nodes."""
        self.locality["cross_node_bytes"] += chain_cross_node_bytes(self.driver_node, nodes, src_bytes, edit_bytes, tail=tail)
        self.locality["attempts"] += attempts

    def rows_back(self, node: str | None, rows: list[dict]) -> None:
        """A chain's rows came back from `node`: their edited images crossed to the driver if elsewhere."""
        if node != self.driver_node:
            self.locality["cross_node_bytes"] += sum(len(r["edited_image"]["bytes"]) for r in rows if r.get("edited_image"))
