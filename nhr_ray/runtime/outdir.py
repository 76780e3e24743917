"""The output folder's run state: a new run, a resumed one (after a crash) or an extended one (a
finished run given a larger budget).

state/run.json holds the config the run was started with and the parts it finished; manifest.json,
written last, marks a complete run. `open_output` only reads and decides (refusing another run's
folder or another config, naming the field: nhr_ray/resumable.py lists those that may differ);
`Output.commit()` writes, once the run is about to start work. A new run that fails before it
recorded any data is removed again (`Output.discard()`), so a corrected command starts afresh.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from nhr_ray.io.store import Store
from nhr_ray.resumable import differences, flat_config
from nhr_ray.runtime import finalize_state

log = logging.getLogger(__name__)

STATE_FORMAT = "nhr-ray-run/1"
STATE = "state/run.json"


class RunError(RuntimeError):
    """A run that cannot start or cannot finish; the message is one line for the user."""


class NothingToDo(RunError):
    """A finished run asked for no more than it had (the CLI prints it and exits 0)."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


@dataclass
class Output:
    store: Store
    mode: str  # "new" | "resumed" | "extended"
    state: dict[str, Any]
    parts: list[dict[str, Any]] = field(default_factory=list)  # the parts finished before this one
    root_existed: bool = True
    committed: bool = False

    @property
    def resumed(self) -> bool:
        return self.mode != "new"

    def commit(self) -> None:
        """Write the run state (new), or reopen a finished run for more (extended: the parts done
        are recorded first, then manifest.json goes, so a kill in between repeats this step)."""
        s = self.store
        if self.mode == "new":
            s.makedirs()
            s.write_json(STATE, self.state)
        elif self.mode == "extended":
            s.write_json(STATE, {**self.state, "parts": self.parts})
            if s.exists("manifest.json"):
                s.delete(s.path("manifest.json"))
        self.committed = True

    def discard(self) -> bool:
        """After a failed start: remove what this new run wrote if it recorded no data yet. True when done."""
        s = self.store
        if self.mode != "new" or not self.committed or s.glob("data", ""):
            return False
        try:
            for p in [*s.glob("state", "", ""), *s.glob(finalize_state.STAGING, "", "")]:
                s.delete(p)
            if s.local:
                for d in (finalize_state.STAGING, "state", "data", *([] if self.root_existed else [""])):
                    if os.path.isdir(s.path(d)) and not os.listdir(s.path(d)):
                        os.rmdir(s.path(d))
        except OSError as e:
            log.warning("could not remove the failed start's run state in %s: %s", s.uri, e)
            return False
        return True


def _read_state(store: Store, out: str) -> dict[str, Any]:
    try:
        state = store.read_json(STATE)
    except (ValueError, OSError) as e:
        raise RunError(f"{out}/{STATE} is unreadable ({type(e).__name__}); refusing to resume") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RunError(f"{out}/{STATE} is not an nhr-ray run state; refusing to resume")
    return state


def part_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest written before runs had parts, as one part."""
    sc = manifest.get("scheduler", {})
    return {"budget_gpu_hours": sc.get("budget_gpu_hours"), "spent_gpu_hours": sc.get("spent_gpu_hours"),
            "ended_by": "budget" if sc.get("budget_exhausted") else "queue", "ended": manifest.get("ended"),
            "triplets": sum(v for k, v in manifest.get("triplets", {}).items() if k.startswith("final_"))}  # fmt: skip


def _extension(cfg, out: str, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished parts, when the config asks for more than the last one had; else NothingToDo."""
    parts = manifest.get("parts") or [part_of(manifest)]
    last, new = parts[-1], cfg.scheduler.budget_gpu_hours
    old = last.get("budget_gpu_hours")
    if last.get("ended_by") != "budget" or old is None:
        raise NothingToDo(f"{out} holds a complete run whose queue was drawn to the end ({last.get('triplets')} "
                          "triplets); nothing to do")
    if new is not None and new <= old:
        raise NothingToDo(f"{out} holds a complete run with a budget of {old:g} GPU-hours ({last.get('spent_gpu_hours', 0):.2f} "
                          f"spent, {last.get('triplets')} triplets); nothing to do: a larger --budget-gpu-hours extends it")
    return parts


def open_output(cfg, out: str) -> Output:
    """Decide what running cfg into `out` means, reading only. Refuses what it must not touch."""
    store = Store(out)
    fp = flat_config(cfg)
    if store.exists(STATE):
        state = _read_state(store, out)
        diff = differences(state.get("fingerprint", {}), fp)
        if diff:
            raise RunError(f"{out} holds a run with another config (differs at {', '.join(diff[:5])}); "
                           "resume with the same config (nhr_ray/resumable.py lists what may differ) or choose a new --out")
        if store.exists("manifest.json"):
            try:
                manifest = store.read_json("manifest.json")
            except (ValueError, OSError) as e:
                raise RunError(f"{out}/manifest.json is unreadable ({type(e).__name__})") from None
            return Output(store, "extended", state, _extension(cfg, out, manifest))
        return Output(store, "resumed", state, list(state.get("parts", [])))
    if store.exists("manifest.json") or store.glob("data", "") or store.glob("state", "", ""):
        raise RunError(f"{out} holds data of an unknown run; choose a new --out directory")
    existed = store.fs.get_file_info(store.root).type.name != "NotFound"
    return Output(store, "new", {"format": STATE_FORMAT, "fingerprint": fp, "started": now()}, root_existed=existed)


def prepare(output: Output) -> None:
    """Before a resumed or extended run reads its record: finish or drop a killed finalize's
    staged shards, and remove temporaries of writes a crash interrupted."""
    if output.mode == "new":
        return
    finalize_state.recover(output.store)
    for d in ("data", "state", finalize_state.STAGING):
        output.store.clean_temporaries(d)
