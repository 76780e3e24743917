"""A real backend built by name inside a Ray actor holding a (fake) GPU: options travel as a dict,
models.root comes from the run config, weights load in setup(), answers come back through Ray."""

import os
from types import SimpleNamespace

import numpy as np
import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():  # the suite's shared cluster (conftest.ray_local), left up by an earlier module
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_flux_and_judge_run_inside_an_actor(cluster, tiny_models):
    from nhr_ray.roles import T2IRequest, VLMRequest

    @ray.remote(num_cpus=0.5)
    class RoleActor:
        def __init__(self, role, name, options, num_gpus, root):
            from nhr_ray.roles import BackendContext, build_backend

            run_config = SimpleNamespace(models=SimpleNamespace(root=root))
            ctx = BackendContext(role=role, run_seed=0, num_gpus=num_gpus, run_config=run_config)
            self.backend = build_backend(role, name, options, ctx)
            self.loaded = hasattr(self.backend, "pipe") or hasattr(self.backend, "model")

        def setup(self):
            self.backend.setup()
            return self.loaded

        def call(self, verb, reqs):
            return getattr(self.backend, verb)(reqs)

    env = {"env_vars": {"HF_HUB_OFFLINE": "1"}}
    root = str(tiny_models["root"])
    t2i = RoleActor.options(num_gpus=1, runtime_env=env).remote("t2i", "flux", {"model": "flux-tiny", "steps": 2}, 1.0, root)
    gate = RoleActor.options(runtime_env=env).remote("gate", "transformers", {"model": "qwen25vl-tiny", "max_new_tokens": 3}, 0.0, root)
    assert ray.get([t2i.setup.remote(), gate.setup.remote()]) == [False, False]  # nothing loaded before setup()
    (img,) = ray.get(t2i.call.remote("generate", [T2IRequest("s", "a cat", 3, 64, 48)]))
    assert img.error is None and img.image.shape == (48, 64, 3) and img.gpu_seconds > 0
    (ans,) = ray.get(gate.call.remote("ask", [VLMRequest("g", "plausibility", "Plausible?", [img.image])]))
    assert ans.error is None and isinstance(ans.text, str) and ans.gpu_seconds == 0.0
