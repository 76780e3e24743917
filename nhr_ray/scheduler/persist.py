"""JobScheduler's checkpoint: its state as a JSON header and plain arrays (scheduler/checkpoint.py
writes them atomically, pickle-free), and loading it back; in-flight jobs go back to the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nhr_ray.scheduler import checkpoint
from nhr_ray.scheduler.policies import ACTIVE
from nhr_ray.scheduler.space import ATTEMPT_BITS


class CheckpointMixin:
    """JobScheduler's methods for checkpoints (it owns space, policy, ledger and counters)."""

    def _identity(self) -> dict[str, Any]:
        return {"run_seed": self.run_seed, "config_hash": self.config_hash, "unit": self.unit,
                "attempts_per_pair": self.m, "policy": self.policy_name}  # fmt: skip

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON header, arrays). In-flight jobs are stored and go back to the queue on load."""
        head = {
            **self._identity(), "categories": self.category_names, "counters": self.c,
            "done_cost": self.done_cost, "wasted_s": self.wasted_s, "stopped": self.stopped,
            "measured": [self.measured_n, self.measured_s],
            "rng": self.rng.bit_generator.state, "ledger": self.ledger.state(), "policy_state": self.policy.state(),
        }  # fmt: skip
        arrays = self.space.arrays()
        arrays["inflight"] = np.fromiter(self.inflight.keys(), np.int64, len(self.inflight))
        for k, v in self.cat_stats.items():
            arrays[f"cat_{k}"] = v
        return head, arrays

    def load_state_dict(self, head: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        checkpoint.check(head, self._identity(), "checkpoint")
        self.category_names = list(head["categories"])
        self._cat_code = {c: i for i, c in enumerate(self.category_names)}
        self.space.load_arrays(arrays)
        self.c.update(head["counters"])
        self.done_cost, self.wasted_s = head["done_cost"], head["wasted_s"]
        self.measured_n, self.measured_s = head.get("measured", [0, 0.0])  # older checkpoints: the prior until 8 are in
        self.stopped.update(head["stopped"])
        self.rng.bit_generator.state = head["rng"]
        self.ledger.load_state(head["ledger"])
        self.policy.load_state(head["policy_state"])
        self.cat_stats = {k: np.array(arrays[f"cat_{k}"], np.int64) for k in self.cat_stats}
        keys = arrays["inflight"]
        self.inflight, self.inflight_s = {}, 0.0
        pairs, atts = keys >> ATTEMPT_BITS, keys & ((1 << ATTEMPT_BITS) - 1)
        live = (self.space.state[pairs] & 7) == ACTIVE  # stopped pairs do not get jobs back
        self.space.restore(pairs[live], atts[live])
        self.c["requeued"] += int(live.sum())
        self.c["abandoned_after_restart"] += int((~live).sum())
        self.c["issued"] -= int(live.sum())
        np.subtract.at(self.cat_stats["issued"], self.space.cat[pairs[live]], 1)

    def save(self, path: str | Path) -> None:
        """Atomic checkpoint. Refuses to overwrite a file that is not this run's checkpoint."""
        path = Path(path)
        if path.exists():
            checkpoint.check(checkpoint.read_header(path), self._identity(), path)
        checkpoint.write(path, *self.state_dict())

    def load(self, path: str | Path) -> None:
        self.load_state_dict(*checkpoint.read(path, self._identity()))

    @classmethod
    def open(cls, path: str | Path, *args, **kwargs) -> Any:
        """Resume from `path` if it exists (refusing a foreign or corrupted one), else start anew."""
        s = cls(*args, **kwargs)
        if Path(path).exists():
            s.load(path)
        return s
