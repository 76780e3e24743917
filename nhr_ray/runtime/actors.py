"""The Ray layer's actor: one generic StageActor hosts any stage (its model loaded once, in setup()).
Its calls are typed and all answer in one shape, a chain of StageResults (stages/base.py) whose
last link carries the rows: `run(batch)` starts a chain, `run_after(chain)` runs the stage on the
last link's rows and adds its own result (earlier links kept as summaries, rows dropped), and
`attempt_rows(chain)` ends an attempt chain on a CPU actor. Pools of them: runtime/pool.py."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import ray

from nhr_ray.stages.base import Stage, StageResult


class ChainEnd(NamedTuple):
    """An attempt chain's answer: each stage's result (summaries: tallies, GPU-seconds, usage), the
    attempts without their edited images, and their attempts-table rows (PNG encoding done)."""

    results: list[StageResult]
    attempts: list
    rows: list[dict]


def _resolve(x: Any) -> Any:
    """Stages take plain data: fetch object refs nested one level in lists and dicts."""
    if isinstance(x, dict) and x and isinstance(next(iter(x.values())), ray.ObjectRef):
        keys = list(x)
        return dict(zip(keys, ray.get([x[k] for k in keys])))
    if isinstance(x, list) and x and isinstance(x[0], ray.ObjectRef):
        return ray.get(x)
    return x


@ray.remote(max_restarts=-1, max_task_retries=0)
class StageActor:
    """Hosts one stage. Nothing heavy in __init__: the backend loads in setup(), once."""

    def __init__(self, stage_cls: type[Stage], config_json: str, role: str | None):
        from nhr_ray.config import RunConfig
        from nhr_ray.redact import install_log_redaction

        self.config = RunConfig.model_validate_json(config_json)
        self.stage = stage_cls(self.config)
        install_log_redaction(self.stage.redact)  # this actor's log records (SDKs' included) never carry a key
        self.role = role or "cpu"
        self.ready = False
        self.latency = None

    def setup(self) -> str:
        if not self.ready:
            from ray.util.metrics import Histogram

            from nhr_ray.runtime.metrics import LATENCY_BOUNDARIES
            from nhr_ray.runtime.ratelimit import RayLimits

            ctx = ray.get_runtime_context()
            gpus = ctx.get_accelerator_ids().get("GPU", [])
            self.stage.device = f"{ctx.get_node_id()}/{','.join(map(str, gpus))}" if gpus else None
            self.stage.limits = RayLimits()  # the backend's rate limits and spend ledger, cluster-wide
            self.stage.setup()
            from nhr_ray.testing import faults

            faults.install(self.stage)  # TEST ONLY: nothing unless NHR_RAY_TEST_FAULT is set (testing/faults.py)
            self.latency = Histogram("nhr_call_latency_seconds", "Seconds per actor call (one batch).",
                                     boundaries=LATENCY_BOUNDARIES, tag_keys=("role",))
            self.ready = True
        return ray.get_runtime_context().get_node_id()

    def run(self, *args) -> list[StageResult]:
        """The stage on these arguments (object refs nested one level are fetched): a chain of one."""
        self.setup()
        t0 = time.perf_counter()
        out = self.stage.process(*[_resolve(a) for a in args])
        self.latency.observe(time.perf_counter() - t0, tags={"role": self.role})
        return [out]

    def run_after(self, upstream: list[StageResult], *args) -> list[StageResult]:
        """The stage on the rows of the upstream chain's last result; the chain, one link longer."""
        return [r.summary() for r in upstream] + self.run(upstream[-1].rows, *args)

    def attempt_rows(self, chain: list[StageResult], image_format: str, keep_images: str) -> ChainEnd:
        """The end of an attempt chain, on a CPU actor: Parquet rows (PNG encoding included) built
        here, off the GPU actors and the driver; the attempts go back without their edited images."""
        import dataclasses

        from nhr_ray.io.rows import AttemptRow

        attempts = chain[-1].rows
        rows = [AttemptRow.of(a, image_format, keep_images).to_row() for a in attempts]
        slim = [dataclasses.replace(a, edited=None) for a in attempts]
        return ChainEnd([r.summary() for r in chain], slim, rows)

    def teardown(self) -> None:
        self.stage.teardown()
