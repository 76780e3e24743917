"""Stage plumbing: a Stage builds its backend once (setup) and processes batches; a Tally counts
every row that entered a stage as kept, dropped with a reason, or failed with an error."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nhr_ray.parsing import writable
from nhr_ray.records import Verdict
from nhr_ray.redact import Redactor, redact
from nhr_ray.roles import Answer, Backend, BackendContext, build_backend


@dataclass
class Resources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class Tally:
    """in = kept + sum(dropped) + sum(failed), always."""

    stage: str
    n_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # repairs and other non-dropping events

    def add(self, v: Verdict) -> None:
        self.n_in += 1
        if v.keep:
            self.kept += 1
        elif v.failed:
            self.failed[v.reason] += 1
        else:
            self.dropped[v.reason] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        self.n_in += n
        self.dropped[reason] += n

    def keep(self, n: int = 1) -> None:
        self.n_in += n
        self.kept += n

    def merge(self, other: "Tally") -> None:
        self.n_in += other.n_in
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.failed.update(other.failed)
        self.notes.update(other.notes)

    def balanced(self) -> bool:
        return self.n_in == self.kept + sum(self.dropped.values()) + sum(self.failed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "in": self.n_in,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "failed": dict(sorted(self.failed.items())),
            **({"notes": dict(sorted(self.notes.items()))} if self.notes else {}),
        }


@dataclass
class StageResult:
    """What every stage's process() returns: the rows it passes on (to the next stage or to storage),
    its Tally, the GPU-seconds it spent by role and its API usage records by role (one per call).
    Work in flight is a chain of these (runtime/actors.py): every link but the last is a summary
    (rows dropped), so a chain's answer stays small."""

    rows: list
    tally: Tally
    gpu_seconds: dict[str, float] = field(default_factory=dict)
    usage: dict[str, list[dict]] = field(default_factory=dict)

    def summary(self) -> "StageResult":
        return StageResult([], self.tally, self.gpu_seconds, self.usage)


class Stage:
    """A step of the method. Subclasses set `name`, `role` (or None for pure CPU work) and
    implement `process(batch, ...) -> StageResult`. Nothing heavy in __init__: models load in
    setup(), once per actor."""

    name: str = ""
    role: str | None = None

    def __init__(self, config, role_backend: str | None = None, role_options: dict | None = None, num_gpus: float = 0.0):
        self.config = config
        self.backend: Backend | None = None
        self._backend_name = role_backend
        self._backend_options = role_options or {}
        self._num_gpus = num_gpus
        self.device: str | None = None  # "<node id>/<GPU ids>", set by the actor hosting this stage
        self.limits = None  # shared limiters (nhr_ray/ports.py), set by the actor hosting this stage; None: in-process
        self.redact = Redactor(config)  # the run's key variables: scrubbed from every answer and error

    def setup(self) -> None:
        self.setup_backend()

    def setup_backend(self) -> None:
        """Build and set up this stage's role backend (once)."""
        if self.role and self.backend is None:
            rc = self.config.role(self.role)
            ctx = BackendContext(
                role=self.role,
                run_seed=self.config.seed,
                num_gpus=self._num_gpus or rc.num_gpus,
                sim=self.config.sim,
                run_config=self.config,
                device=self.device,
                limits=self.limits,
            )
            backend = build_backend(self.role, self._backend_name or rc.backend, self._backend_options or rc.options, ctx)
            backend.setup()
            self.backend = Redacting(backend, self.redact)

    def result(self, rows: list, tally: Tally, gpu_seconds: float = 0.0, usage=(), role: str | None = None) -> StageResult:
        """This stage's StageResult: GPU-seconds and usage records (empty ones left out) under its
        role (or `role`: the pool it runs in, for a stage without a model of its own)."""
        role = role or self.role or "cpu"
        used = [u for u in usage if u]
        return StageResult(rows, tally, {role: gpu_seconds}, {role: used} if used else {})

    def attempts_result(self, attempts: list, tally: Tally, usage=()) -> StageResult:
        """An attempt stage's StageResult: the GPU-seconds it noted on each attempt, summed."""
        return self.result(attempts, tally, sum(a.gpu_seconds.get(self.name, 0.0) for a in attempts), usage)

    def teardown(self) -> None:
        if self.backend is not None:
            self.backend.teardown()
            self.backend = None


class Redacting:
    """A stage's backend, its answers scrubbed by the run's redactor (text, error and meta) before
    the stage sees them: no key a backend saw reaches a verdict, a row, a report or a log."""

    def __init__(self, backend: Backend, redactor: Redactor):
        self.inner, self._redact = backend, redactor

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _clean(self, answers: list[Answer]) -> list[Answer]:
        r = self._redact.now()  # the keys read once for the batch
        for a in answers:
            a.text, a.error, a.meta = r(a.text), r(a.error), r.value(a.meta)
        return answers

    def ask(self, requests):
        return self._clean(self.inner.ask(requests))

    def complete(self, requests):
        return self._clean(self.inner.complete(requests))

    def generate(self, requests):
        return self._clean(self.inner.generate(requests))

    def edit(self, requests):
        return self._clean(self.inner.edit(requests))


def error_verdict(stage: str, error: str, raw: str = "") -> Verdict:
    """A failed item's verdict; the error and raw text pass the redactor (as every error text does)."""
    error = writable(redact(error) or "")
    return Verdict(stage=stage, keep=False, reason=f"error:{error.split(':')[0][:60]}", raw=writable(redact(raw or error[:500])), failed=True)
