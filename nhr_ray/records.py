"""The rows that flow through the pipeline, with stable ids and per-item seeds.

Every id is a lineage string (scene -> source -> pair -> attempt), so any row says where it came
from; every seed and every sample_id is a hash of (run seed, that lineage), so an outcome depends on
what an item is, never on when or where it was processed.

    scene    S0003017                item #17 of design request #3: a scene prompt and its instructions
    source   S0003017.n07            seed #7 of that scene rendered by the T2I model
    pair     S0003017.n07.i2         instruction #2 applied to that source image
    attempt  S0003017.n07.i2.m3      attempt #3 (its own editor seed) of that pair
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def stable_hash(*parts: object, bits: int = 64) -> int:
    """A platform-independent hash of its arguments (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - bits)


def item_seed(run_seed: int, item_id: str, purpose: str = "") -> int:
    """A 32-bit seed for one item (what generators and samplers take)."""
    return stable_hash(run_seed, purpose, item_id, bits=31)


def item_rng(run_seed: int, item_id: str, purpose: str) -> np.random.Generator:
    return seeded_rng(stable_hash(run_seed, purpose, item_id))


def seeded_rng(seed: int) -> np.random.Generator:
    """np.random.default_rng(seed) for an int seed, the same stream, built without its argument
    checks (40 % faster; the simulation builds one per item and question)."""
    return np.random.Generator(np.random.PCG64(seed))


def sample_id(run_seed: int, kind: str, lineage: str) -> str:
    return hashlib.blake2b(f"{run_seed}:{kind}:{lineage}".encode(), digest_size=8).hexdigest()


def source_id(scene: str, seed_index: int) -> str:
    return f"{scene}.n{seed_index:02d}"


def pair_id(source: str, instruction_index: int) -> str:
    return f"{source}.i{instruction_index}"


def attempt_id(pair: str, attempt_index: int) -> str:
    return f"{pair}.m{attempt_index}"


@dataclass
class Instruction:
    index: int
    text: str
    category: str


@dataclass
class Scene:
    scene_id: str
    prompt: str
    instructions: list[Instruction]
    style: str = ""


@dataclass
class Source:
    source_id: str
    scene_id: str
    prompt: str
    seed: int
    width: int
    height: int
    image: np.ndarray | None  # HxWx3 uint8 RGB
    style: str = ""
    instructions: list[Instruction] = field(default_factory=list)
    gate: "Verdict | None" = None
    gpu_seconds: float = 0.0  # T2I + gate cost of this image


@dataclass
class Verdict:
    """A judge's or a check's answer about one item. A 'no' is data, not an exception."""

    stage: str
    keep: bool
    reason: str  # 'ok' when kept; otherwise a named, counted outcome
    raw: str = ""  # the model's own words, kept for the attempts table
    adherence: float | None = None
    aesthetics: float | None = None
    failed: bool = False  # infrastructure failure (model error, API exhausted), not a judgement
    judges: list[dict] | None = None  # the validator's judges, each one's scores and reason (stages/panel.py)

    @property
    def outcome(self) -> str:
        return "kept" if self.keep else ("failed" if self.failed else "dropped")


@dataclass
class Job:
    """One edit attempt to run: a (source, instruction) pair and an attempt index."""

    attempt_id: str
    pair_id: str
    source_id: str
    instruction_index: int
    attempt_index: int
    seed: int
    cost_estimate: float = 0.0


@dataclass
class Attempt:
    job: Job
    instruction: Instruction
    width: int
    height: int
    edited: np.ndarray | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    gpu_seconds: dict[str, float] = field(default_factory=dict)  # role -> busy GPU-s spent on it
    edit_meta: dict[str, Any] = field(default_factory=dict)
    lowlevel: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)  # API usage summed over its calls

    @property
    def alive(self) -> bool:
        return all(v.keep for v in self.verdicts)

    @property
    def last(self) -> Verdict | None:
        return self.verdicts[-1] if self.verdicts else None

    def scores(self, stage: str) -> tuple[float | None, float | None]:
        for v in self.verdicts:
            if v.stage == stage:
                return v.adherence, v.aesthetics
        return None, None


def geometric_score(adherence: float, aesthetics: float) -> float:
    return math.sqrt(max(adherence, 0.0) * max(aesthetics, 0.0))
