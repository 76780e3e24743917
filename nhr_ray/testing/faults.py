"""TEST ONLY: wiring faults, injected on purpose, to show that each mistake would move a measured
figure (tests/test_wiring_faults.py, benchmarks/wiring_faults.py; issue 17).

A fault is switched on by the environment variable NHR_RAY_TEST_FAULT=<name>, never by a config: the
stage actor (runtime/actors.py) installs it into the stage it hosts, once, at setup; the pipeline
hands the variable on to the cluster's workers and records it in manifest.json (`test_fault`) and
on its last line, and every batch a faulted streaming stage processes counts a `TEST_FAULT_<name>`
note in its funnel row (the final stages' rows are rebuilt from their verdicts), so a faulted run
can never pass for a real one. Each fault sits at the boundary between a stage and the
model role it holds (the requests it sends, the answers it gets) or in that stage's own copy of its
config section; production code is untouched.

    wrong_image        the validator is handed another attempt's edited image: the next candidate's in
                       the batch that belongs to another pair (an index off by one in a batch the
                       scheduler fills from all over the queue)
    other_instruction  the validator reads another pair's instruction (that candidate's whole prompt)
    swapped            the validator is handed the edited image as the source and the source as the edit
    unrelated_inverse  every inverse instruction the inverter writes is replaced by unrelated text
    lowlevel_off       the low-level check is turned off (everything passes it)
    strict_threshold   the validation thresholds applied as `>` instead of `>=` (a score exactly on the
                       threshold fails: the threshold becomes the next float above it)
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Callable

ENV = "NHR_RAY_TEST_FAULT"

log = logging.getLogger(__name__)

UNRELATED = ("Make the sky look like a stormy sunset over the sea.", "Write the word HELLO in large letters.",
             "Turn the daylight into a snowy night in the mountains.")  # fmt: skip


def _pair(item_id: str) -> str:
    return item_id.rpartition(".m")[0] or item_id


class Rewriting:
    """A stage's backend whose judge requests pass through `requests(self, batch)` before it is asked,
    or whose text answers pass through `answers(batch, answers)` after. `memory` holds the last batch's
    candidates, for a batch with no donor of its own (the wrapper's state: one per actor)."""

    def __init__(self, inner, requests=None, answers=None):
        self.inner, self._requests, self._answers, self.memory = inner, requests, answers, []

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ask(self, requests):
        return self.inner.ask(self._requests(self, requests))

    def complete(self, requests):
        return self._answers(requests, self.inner.complete(requests))


def _candidates(requests) -> list[tuple[str, list]]:
    """The batch's requests grouped by candidate (item id), in order."""
    groups: dict[str, list] = {}
    for r in requests:
        groups.setdefault(r.item_id, []).append(r)
    return list(groups.items())


def _donor(i: int, cands: list, memory: list, ok: Callable[[Any, Any], bool]):
    """Another candidate for candidate i: the next one in the batch that `ok` accepts, else one
    remembered from an earlier batch; None when there is none."""
    n = len(cands)
    for k in range(1, n):
        d = cands[(i + k) % n]
        if ok(cands[i], d):
            return d
    return next((d for d in memory if ok(cands[i], d)), None)


def _edited(group: list):
    """A candidate's (source, edited image): its profile hands [before, after] in a two-image request."""
    two = next(r for r in group if len(r.images) == 2)
    return two.images[0], two.images[1]


def _swap_images(group: list, mapping: dict[int, Any]) -> list:
    return [replace(r, images=[mapping.get(id(x), x) for x in r.images]) for r in group]


def _rewrite_batch(self: Rewriting, requests, fault: str) -> list:
    cands = _candidates(requests)
    out = []
    for i, (_, group) in enumerate(cands):
        if not any(len(r.images) == 2 for r in group):
            out += group
            continue
        src, edited = _edited(group)
        if fault == "swapped":
            out += _swap_images(group, {id(src): edited, id(edited): src})
            continue
        if fault == "wrong_image":
            d = _donor(i, cands, self.memory, lambda c, d: _pair(d[0]) != _pair(c[0]))
            out += _swap_images(group, {id(edited): _edited(d[1])[1]}) if d else group
            continue
        d = _donor(i, cands, self.memory, lambda c, d: _pair(d[0]) != _pair(c[0]) and d[1][0].prompt != c[1][0].prompt)
        out += [replace(r, prompt=dr.prompt, layout=dr.layout) for r, dr in zip(group, d[1])] if d else group
    self.memory = [c for c in cands if any(len(r.images) == 2 for r in c[1])][-4:]
    return out


def _unrelated(requests, answers) -> list:
    for k, (r, a) in enumerate(zip(requests, answers)):
        if a.error is None:
            a.text = UNRELATED[(len(r.item_id) + k) % len(UNRELATED)]
    return answers


def _validator(fault: str):
    def install(stage) -> None:  # every judge of the validator's panel (stages/panel.py): one, or an ensemble's
        wrap = lambda b: Rewriting(b, requests=lambda s, rs: _rewrite_batch(s, rs, fault))  # noqa: E731
        stage.panel.backends = {k: wrap(b) for k, b in stage.panel.backends.items()}
        stage.backend = next(iter(stage.panel.backends.values()))

    return install


def _lowlevel_off(stage) -> None:
    stage.config = stage.config.model_copy(update={"lowlevel": stage.config.lowlevel.model_copy(update={"enabled": False})})


def _strict(stage) -> None:
    v = stage.config.validation
    strict = {k: math.nextafter(getattr(v, k), math.inf) for k in ("min_adherence", "min_aesthetics")}
    stage.config = stage.config.model_copy(update={"validation": v.model_copy(update=strict)})


@dataclass(frozen=True)
class Fault:
    name: str
    stage: str  # the stage (stages/table.py name) it is injected into
    install: Callable[[Any], None]


FAULTS = {f.name: f for f in (
    Fault("wrong_image", "validation", _validator("wrong_image")),
    Fault("other_instruction", "validation", _validator("other_instruction")),
    Fault("swapped", "validation", _validator("swapped")),
    Fault("unrelated_inverse", "inversion", lambda s: setattr(s, "backend", Rewriting(s.backend, answers=_unrelated))),
    Fault("lowlevel_off", "lowlevel", _lowlevel_off),
    Fault("strict_threshold", "validation", _strict),
)}  # fmt: skip


def env_vars() -> dict[str, str]:
    """The variable to hand on to a cluster's workers (empty: no fault), said loudly."""
    name = active()
    if name:
        log.warning("TEST FAULT %r is on (%s): this run's data is wrong on purpose", name, ENV)
    return {ENV: name} if name else {}


def record() -> dict[str, str]:
    """What manifest.json records: {"test_fault": name}, or nothing for a run without a fault."""
    name = active()
    return {"test_fault": name} if name else {}


def active() -> str | None:
    """The fault this process was started with (None: none). An unknown name is an error."""
    name = os.environ.get(ENV, "").strip()
    if name and name not in FAULTS:
        raise ValueError(f"{ENV}={name!r} names no fault; known: {sorted(FAULTS)}")
    return name or None


def install(stage) -> str | None:
    """Inject the active fault into `stage` if it is the stage the fault hits; its name, or None."""
    name = active()
    if name is None or FAULTS[name].stage != stage.name:
        return None
    log.warning("TEST FAULT %r injected into stage %r (%s is set): this run's data is wrong on purpose", name, stage.name, ENV)
    FAULTS[name].install(stage)
    process = stage.process

    def noted(*args, **kwargs):
        res = process(*args, **kwargs)
        res.tally.notes[f"TEST_FAULT_{name}"] += 1
        return res

    stage.process = noted
    return name
