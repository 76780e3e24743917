"""GPU-second accounting on two clocks.

busy:     what each call took x the GPUs it used, reported by the actors (by role and by stage).
reserved: GPUs held by the pipeline's actors x wall time, advanced by `tick()` from what the runtime
          last declared with `set_reserved()` (by role). The clock is injectable for tests.

On real hardware reserved >= busy (idle time between calls is paid for); in the simulation world
costs are virtual, so only busy means anything there.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from nhr_ray.io.legacy import RENAMED_STAGES


class Ledger:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.by_role: dict[str, float] = defaultdict(float)
        self.by_stage: dict[str, float] = defaultdict(float)
        self.reserved_by_role: dict[str, float] = defaultdict(float)
        self.held: dict[str, float] = {}
        self._last: float | None = None

    # busy ------------------------------------------------------------------------------------
    def add(self, role: str, stage: str, gpu_seconds: float) -> None:
        self.by_role[role] += gpu_seconds
        self.by_stage[stage] += gpu_seconds

    @property
    def total(self) -> float:
        return float(sum(self.by_role.values()))

    busy_s = total

    # reserved --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self._last is not None and now > self._last:
            for role, gpus in self.held.items():
                self.reserved_by_role[role] += gpus * (now - self._last)
        if self._last is None or now > self._last:
            self._last = now

    def set_reserved(self, gpus: float | dict[str, float], now: float | None = None) -> None:
        """From now on the pipeline holds this many GPUs (a number, or GPUs per role)."""
        self.tick(now)
        self.held = dict(gpus) if isinstance(gpus, dict) else {"pipeline": float(gpus)}

    @property
    def reserved_s(self) -> float:
        return float(sum(self.reserved_by_role.values()))

    # persistence -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"by_role": dict(self.by_role), "by_stage": dict(self.by_stage),
                "reserved_by_role": dict(self.reserved_by_role), "held": self.held}  # fmt: skip

    def load_state(self, s: dict[str, Any]) -> None:
        self.by_role = defaultdict(float, s["by_role"])
        self.by_stage = defaultdict(float)
        for stage, seconds in s["by_stage"].items():  # an older release's checkpoint: "validate" is "validation"
            self.by_stage[RENAMED_STAGES.get(stage, stage)] += seconds
        self.reserved_by_role = defaultdict(float, s["reserved_by_role"])
        self.held = dict(s["held"])
        self._last = None  # wall time while the run was down is not counted

    def as_dict(self) -> dict[str, Any]:
        h = 3600.0
        return {
            "busy_gpu_seconds": self.total,
            "busy_gpu_hours": self.total / h,
            "reserved_gpu_hours": self.reserved_s / h,
            "by_role_gpu_hours": {k: v / h for k, v in sorted(self.by_role.items())},
            "by_stage_gpu_hours": {k: v / h for k, v in sorted(self.by_stage.items())},
            "reserved_by_role_gpu_hours": {k: v / h for k, v in sorted(self.reserved_by_role.items())},
            "gpus_held": dict(self.held),
        }
