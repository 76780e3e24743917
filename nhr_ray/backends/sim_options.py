"""The SIMULATION backends' options, apart from the backends (nhr_ray/backends/sim) so that a
config's `roles.<role>.options` are checked without importing the simulation world or OpenCV."""

from __future__ import annotations

from nhr_ray.roles import BackendOptions


class SimTextOptions(BackendOptions):
    pass


class SimT2IOptions(BackendOptions):
    steps: int = 4


class SimEditorOptions(BackendOptions):
    min_steps: int = 18
    max_steps: int = 28


class SimJudgeOptions(BackendOptions):
    pass
