"""Which roles of a run were simulated, read back from what the run wrote, and the guard that keeps a
simulated judge off data the simulation did not make.

A run lists its simulated roles in manifest.json (`simulated_roles`, RunConfig.simulated_roles());
a run written before that key is read from the backends its recorded config names. Data counts as
made by the simulation when the roles that made its images (t2i and editor) both were; a dataset
with no nhr-ray manifest beside it (any foreign dataset, an export) counts as not made by it. Scores
of a simulated judge on other data mean nothing, so `nhr-ray score` and `nhr-ray calibrate` refuse
them unless asked (`--allow-simulated-judge`), and then say so in what they print and write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nhr_ray.config.cluster import SIM
from nhr_ray.products.tables import InputError
from nhr_ray.roles import ROLE_KINDS

MAKERS = ("t2i", "editor")  # the roles whose output the images of a triplet are
FLAG = "--allow-simulated-judge"


def manifest_simulated_roles(manifest: dict[str, Any]) -> list[str] | None:
    """A run's simulated roles from its manifest (None: not an nhr-ray run manifest)."""
    roles = manifest.get("simulated_roles")
    if isinstance(roles, list):
        return [str(r) for r in roles]
    conf = (manifest.get("config") or {}).get("roles") if isinstance(manifest.get("config"), dict) else None
    if not isinstance(conf, dict):
        return None
    return [r for r in ROLE_KINDS if isinstance(conf.get(r), dict) and conf[r].get("backend") == SIM]


def read_manifest(run_dir) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def dataset_simulated_roles(files: list[Path]) -> list[str] | None:
    """The simulated roles of the nhr-ray run whose folder (or data/ folder) holds these files: the
    first manifest.json in their common folder or its two nearest parents; None when there is none."""
    here = Path(os.path.commonpath([str(Path(f).resolve().parent) for f in files]))
    for d in [here, *list(here.parents)[:2]]:
        m = read_manifest(d)
        roles = manifest_simulated_roles(m) if m is not None else None
        if roles is not None:
            return roles
    return None


def made_by_simulation(sim_roles: list[str] | None) -> bool:
    return sim_roles is not None and all(r in sim_roles for r in MAKERS)


def check_simulated_judge(what: str, sim_roles: list[str] | None, allow: bool, remedy: str) -> None:
    """Refuse a simulated judge on `what` unless the simulation made it or `allow` is set."""
    if allow or made_by_simulation(sim_roles):
        return
    made = ("it has no nhr-ray manifest, so nothing says the simulation made it" if sim_roles is None
            else f"its run made its images with real {', '.join(r for r in MAKERS if r not in sim_roles)}")  # fmt: skip
    raise InputError(f"refusing a SIMULATED judge (roles.validator.backend: sim) on {what}: {made}, and a simulated "
                     f"judge's scores of it mean nothing. {remedy}, or pass {FLAG} to get the simulation's numbers, "
                     "labelled as such")  # fmt: skip


def run_judge(run_dir, allow: bool) -> dict[str, Any]:
    """Who recorded a run's validator scores: whether it was the simulation, and whether the
    simulation made the run's images. Refuses (InputError) a simulated judge on other data."""
    roles = manifest_simulated_roles(read_manifest(run_dir) or {})
    simulated = roles is not None and "validator" in roles
    if simulated:
        check_simulated_judge(f"the run {run_dir}", roles, allow,
                              "Calibrate a real validator's scores of it (--predictions FILE)")
    return {"simulated_judge": simulated, "allow_simulated_judge": allow, "made_by_simulation": made_by_simulation(roles)}
