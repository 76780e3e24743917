"""Judge profiles: how one judge model is asked to score an edit and how its answer is read.

A profile is the scoring prompt (files under prompts/), the arrangement of images and text the judge
was trained on, an answer parser that never raises, and the mapping of the judge's own scale onto
ours (adherence and aesthetics, 1.0-5.0 floats). The stages ask a profile for the requests of one
candidate, send them to whatever backend the role has (transformers, vLLM, an OpenAI-compatible
server, Gemini), hand the answers back to the profile and decide on the scores it returns. A profile
also writes the answer it would expect for given scores (`answers`): the target text of a tuned
judge (`nhr-ray tune-judge`).

    nhr             our prompt, JSON {"adherence", "aesthetics"}; the parser also reads the paper's keys
    nhr-paper-keys  our prompt asking for the paper's keys {"InstructionAdherence", "ImageAesthetic"}
    imgedit-judge   ImgEdit-Judge (PKU-YuanGroup/ImgEdit): three 1-5 integers as "Name: N" lines
    editscore       EditScore (VectorSpaceLab/EditScore): two JSON answers with 0-25 score lists
"""

from __future__ import annotations

import abc
import functools
import json
from typing import Any, ClassVar

from nhr_ray.parsing import Parsed
from nhr_ray.roles import VLMRequest

OUR_RANGE = (1.0, 5.0)


class JudgeProfile(abc.ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    # the simulation judge answers only in our JSON (either spelling); other formats need a real model
    sim_speaks_it: ClassVar[bool] = False

    def __init__(self, prompt_dir: str | None = None):
        self.prompt_dir = prompt_dir  # None: the packaged prompts/

    @abc.abstractmethod
    def requests(self, item_id: str, instruction: str, before, after) -> list[VLMRequest]:
        """The questions one candidate needs (most judges: one)."""

    @abc.abstractmethod
    def parse(self, texts: list[str | None]) -> Parsed:
        """The answers to `requests`, in order -> Parsed({"adherence", "aesthetics"}) on our 1-5
        scale, or a named reason. Never raises."""

    @abc.abstractmethod
    def answers(self, adherence: float, aesthetics: float) -> list[str]:
        """What this judge should answer, request by request, for these scores (tuning targets)."""

    def raw(self, texts: list[str | None]) -> str:
        """The judge's words for the attempts table: the text itself, or a JSON list of several."""
        return (texts[0] or "") if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


def clamp_ours(x: float) -> float:
    return min(OUR_RANGE[1], max(OUR_RANGE[0], float(x)))


def check_answer_count(texts: list[str | None], n: int) -> Parsed | None:
    if len(texts) != n:
        return Parsed(reason="missing_answer")
    return None


def _registry() -> dict[str, type[JudgeProfile]]:
    from nhr_ray.judges.editscore import EditScoreProfile
    from nhr_ray.judges.imgedit import ImgEditJudgeProfile
    from nhr_ray.judges.nhr import NHRPaperKeysProfile, NHRProfile

    return {c.name: c for c in (NHRProfile, NHRPaperKeysProfile, ImgEditJudgeProfile, EditScoreProfile)}


def profile_names() -> list[str]:
    return list(_registry())


def profile_class(name: str) -> type[JudgeProfile]:
    reg = _registry()
    if name not in reg:
        raise KeyError(f"unknown judge profile {name!r}; known: {list(reg)}")
    return reg[name]


@functools.lru_cache(maxsize=32)
def get_profile(name: str, prompt_dir: str | None = None) -> JudgeProfile:
    return profile_class(name)(prompt_dir)


def role_profile(config: Any, role: str) -> JudgeProfile:
    """The profile a run config gives a judging role: 'prefilter', 'validator' or 'consistency'."""
    judging = getattr(config, "judging", None)
    if judging is None:
        return get_profile("nhr")
    pc = judging.for_role(role)
    return get_profile(pc.profile, pc.prompt_dir)
