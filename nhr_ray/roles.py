"""Model roles: four small interfaces and one registry of named backends.

Seven roles of the method map onto four kinds of model:

    role                         kind      what it does
    designer (stage 1)           text      prompt text -> text (JSON scenes)
    t2i (stage 2)                t2i       prompt, seed, size -> image
    gate (stage 3)               vlm       images + prompt -> text (yes/no)
    editor (stage 5)             editor    image, instruction, seed -> image
    prefilter (stage 6)          vlm       images + prompt -> text (scores JSON, yes/no)
    validator (stages 8, 11)     vlm
    inverter (stage 9)           text

Backends take batches and answer one item per request, in order. They return what the model said
(raw text, pixels) and what the call cost; parsing and deciding belong to the stages. A backend
never raises for one bad item: it returns that item's `error` so the stage can count it.
Adding a backend is one class and one line in the table of nhr_ray/backends/__init__.py (a plugin's
or a test's: one `@register` line). What a backend needs from the runtime comes in through its
`BackendContext` (nhr_ray/ports.py), never by importing it.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from nhr_ray.backends import BUILTIN, BackendEntry
from nhr_ray.ports import Limits
from nhr_ray.stages import table

ROLE_KINDS: dict[str, str] = table.role_kinds()  # from the stage table (stages/table.py)


# ----- requests and answers ------------------------------------------------------------------


@dataclass
class TextRequest:
    item_id: str
    task: str  # 'design' | 'invert' | ...: what is asked (simulation backends dispatch on it)
    prompt: str  # the filled prompt template
    system: str = ""
    json_schema: dict[str, Any] | None = None  # constrain the answer where the backend can


@dataclass
class T2IRequest:
    item_id: str
    prompt: str
    seed: int
    width: int
    height: int


@dataclass
class EditRequest:
    item_id: str
    image: np.ndarray  # HxWx3 uint8 RGB
    instruction: str
    seed: int


@dataclass
class VLMRequest:
    item_id: str
    question: str  # 'plausibility' | 'edit_scores' | 'unwanted_change' | 'aesthetics' | a judge profile's own
    prompt: str
    images: list[np.ndarray]
    json_schema: dict[str, Any] | None = None
    # the message in order, where a judge was trained on another arrangement (text before the images,
    # labels before each image): text pieces and indices into `images`; None: every image, then `prompt`
    layout: list[str | int] | None = None
    max_tokens: int | None = None  # answer budget this question needs (a reasoning judge's); None: the backend's

    def __post_init__(self) -> None:
        if self.layout is not None:  # processors pair images with their placeholders in order
            used = [x for x in self.layout if isinstance(x, int)]
            if used != list(range(len(self.images))):
                raise ValueError(f"layout {self.layout!r} must place the {len(self.images)} images once each, in order")

    def content(self) -> list[str | int]:
        """Text pieces and image indices in the order the model sees them."""
        return list(self.layout) if self.layout is not None else [*range(len(self.images)), self.prompt]


@dataclass
class Answer:
    """One item's answer. `gpu_seconds` is busy GPU time (wall time x GPUs held, or the simulation's
    virtual cost); `error` is set instead of raising when this one item failed."""

    text: str | None = None
    image: np.ndarray | None = None
    error: str | None = None
    gpu_seconds: float = 0.0
    # standard keys, summed by role into the ledger, funnel and manifest:
    # input_tokens, output_tokens, usd, api_calls, retries
    usage: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ----- backends --------------------------------------------------------------------------------


class BackendOptions(BaseModel):
    """Base for a backend's own options (`roles.<role>.options` in the config). Unknown keys fail."""

    model_config = ConfigDict(extra="forbid")


class Backend(abc.ABC):
    kind: ClassVar[str]
    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, options: BackendOptions, context: "BackendContext"):
        self.options = options
        self.context = context

    def setup(self) -> None:
        """Load weights, open clients. Called once per actor, never at import or construction."""

    def teardown(self) -> None:
        """Release what setup() took."""

    @classmethod
    def preflight(cls, options: BackendOptions, context: "BackendContext") -> None:
        """Cheap checks before any work starts (packages importable, keys present). Raise
        BackendUnavailable with a message that says how to fix it."""


@dataclass
class BackendContext:
    role: str
    run_seed: int
    num_gpus: float
    sim: Any = None  # the simulation world's settings (config.SimConfig); only sim backends read it
    prompts_dir: str | None = None
    run_config: Any = None  # the whole validated config.RunConfig (API sections, sources, ...)
    device: str | None = None  # where the actor runs, "<node id>/<GPU ids>" (set by the Ray layer; None outside Ray)
    # shared rate limiters and the run's spend ledger (nhr_ray/ports.py): the Ray layer hands in its
    # cluster-wide ones; None: this process's own buckets (a test, a CLI tool outside Ray)
    limits: Limits | None = None
    judge: str | None = None  # which judge of the validator's ensemble this backend is (None: the role's one judge)


class BackendUnavailable(RuntimeError):
    """A configured backend cannot run here (missing package, missing key). Raised before work."""


class TextModel(Backend):
    kind = "text"

    @abc.abstractmethod
    def complete(self, requests: list[TextRequest]) -> list[Answer]: ...


class ImageGenerator(Backend):
    kind = "t2i"

    @abc.abstractmethod
    def generate(self, requests: list[T2IRequest]) -> list[Answer]: ...


class ImageEditor(Backend):
    kind = "editor"

    @abc.abstractmethod
    def edit(self, requests: list[EditRequest]) -> list[Answer]: ...


class VisionJudge(Backend):
    kind = "vlm"

    @abc.abstractmethod
    def ask(self, requests: list[VLMRequest]) -> list[Answer]: ...


_REGISTRY: dict[tuple[str, str], type[Backend] | BackendEntry] = dict(BUILTIN)  # (kind, name) -> class or "module:Class"


def register(kind: str, name: str, description: str = ""):
    """Class decorator: make a backend selectable as `backend: <name>` for roles of that kind (a
    plugin's or a test's; the built-in ones are listed in nhr_ray/backends/__init__.py)."""

    def deco(cls):
        _REGISTRY[(kind, name)] = cls
        return cls

    return deco


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry(role: str, name: str) -> tuple[str, type[Backend] | BackendEntry]:
    kind = ROLE_KINDS[role]
    entry = _REGISTRY.get((kind, name))
    if entry is None:
        known = sorted(n for k, n in _REGISTRY if k == kind)
        raise KeyError(f"unknown backend {name!r} for role {role!r} (kind {kind}); known: {known}")
    return kind, entry


def backend_class(role: str, name: str) -> type[Backend]:
    """The backend class (imports its module, light at import; heavy packages load in setup())."""
    kind, entry = _entry(role, name)
    if isinstance(entry, BackendEntry):
        entry = _REGISTRY[(kind, name)] = _load(entry.cls)
    return entry


def options_class(role: str, name: str) -> type[BackendOptions]:
    """The backend's Options model, without importing the backend where the table names it apart."""
    _, entry = _entry(role, name)
    if isinstance(entry, BackendEntry) and entry.options:
        return _load(entry.options)
    return backend_class(role, name).Options


def _describe(entry: type[Backend] | BackendEntry) -> str:
    if isinstance(entry, BackendEntry):
        return entry.description
    return (entry.__doc__ or "").strip().split("\n")[0]


def list_backends() -> dict[str, list[tuple[str, str]]]:
    """role -> [(backend name, one-line description)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for role, kind in ROLE_KINDS.items():
        out[role] = sorted((n, _describe(e)) for (k, n), e in _REGISTRY.items() if k == kind)
    return out


def build_backend(role: str, name: str, options: dict[str, Any], context: BackendContext) -> Backend:
    cls = backend_class(role, name)
    return cls(cls.Options.model_validate(options), context)
