"""The token bucket as plain code (a fake clock), and one bucket shared by several Ray actors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import sim_except
from nhr_ray.runtime.ratelimit import TokenBucket, reset_local, shared_limiter


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def drain(bucket, clock, n, tokens=0.0):
    """Issue n requests the way the backends do (sleep what reserve() says); return send times."""
    sends = []
    for _ in range(n):
        r = bucket.reserve(tokens)
        sends.append(clock.t + r.wait_s)
    return sends


def test_requests_per_minute_with_one_second_burst():
    clock = Clock()
    b = TokenBucket(rpm=600, clock=clock)  # 10/s, burst 10
    sends = drain(b, clock, 40)
    assert sends[:10] == [100.0] * 10  # the burst
    assert sends[10] == pytest.approx(100.1) and sends[-1] == pytest.approx(103.0)
    # in any window of length w, at most 10 + 10 * w sends
    for i in range(len(sends)):
        for j in range(i, len(sends)):
            assert j - i + 1 <= 10 + 10 * (sends[j] - sends[i]) + 1e-9


def test_idle_refill_is_capped_and_tokens_settle_with_real_usage():
    clock = Clock()
    b = TokenBucket(rpm=60, tpm=6000, clock=clock)  # 1 request/s, 100 tokens/s, burst 1 s
    assert b.reserve(100).wait_s == 0
    clock.t += 3600  # an idle hour buys one second of burst, not an hour
    assert b.reserve(100).wait_s == 0
    assert b.reserve(50).wait_s == pytest.approx(1.0)  # request bucket binds
    b.settle(token_delta=+450)  # the call used 500 tokens, not 50: the next waits for them
    assert b.reserve(0).wait_s == pytest.approx(5.0)  # 500 tokens of debt at 100/s, not 2 s
    b2 = TokenBucket(tpm=6000, clock=clock)
    b2.reserve(100)
    b2.settle(token_delta=-100)  # refund: nothing was used
    assert b2.reserve(100).wait_s == 0


def test_budget_counts_in_flight_estimates_and_settles():
    b = TokenBucket(max_usd=1.0)
    assert b.reserve(usd=0.6).ok and b.reserve(usd=0.3).ok
    b.settle(usd_estimate=0.6, usd_actual=0.75)  # pending 0.3 + spent 0.75 -> past the limit
    assert not b.reserve(usd=0.01).ok
    b.settle(usd_estimate=0.3, usd_actual=0.0)  # the second call failed: costs nothing
    assert b.reserve(usd=0.1).ok
    assert b.stats()["spent_usd"] == pytest.approx(0.75)


def test_local_buckets_are_shared_by_name():
    reset_local()
    a = shared_limiter("gemini:m", rpm=60)
    b = shared_limiter("gemini:m", rpm=60)
    c = shared_limiter("openai:o3", rpm=60)
    assert a.reserve().wait_s == 0 and b.reserve().wait_s == pytest.approx(1.0, abs=0.01)
    assert c.reserve().wait_s == 0
    reset_local()


def test_a_backend_takes_its_limits_from_its_context_port(monkeypatch):
    """BackendContext.limits is the backend's only way to its limiters: an in-process Limits handed
    in sees every request and the spend; this process's shared buckets see none of them."""
    import types

    from nhr_ray.config import ApiConfig
    from nhr_ray.ports import LOCAL, LocalLimits
    from nhr_ray.roles import BackendContext, build_backend
    from nhr_ray.testing.fake_api import FakeAPIServer

    reset_local()
    mine = LocalLimits()
    with FakeAPIServer("gemini") as srv:
        api = ApiConfig.model_validate({"gemini": {"base_url": srv.base_url, "requests_per_minute": 6000}, "max_cost_usd": 5.0})
        ctx = BackendContext("validator", 0, 0, run_config=types.SimpleNamespace(api=api), limits=mine)
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaPORTtestKEY1234567890abcdef")
        b = build_backend("validator", "gemini", {}, ctx)
        b.setup()
        try:
            import numpy as np

            from nhr_ray.roles import VLMRequest

            im = np.zeros((8, 8, 3), np.uint8)
            answers = b.ask([VLMRequest(f"p{i}", "edit_scores", "p", [im, im]) for i in range(3)])
        finally:
            b.teardown()
    assert [a.error for a in answers] == [None] * 3 and len(srv.records) == 3
    assert mine.bucket("gemini:gemini-2.5-flash").stats()["requests"] == 3
    assert mine.bucket("usd:local").stats()["spent_usd"] > 0
    assert LOCAL._buckets == {}  # nothing went around the port
    reset_local()


@pytest.fixture
def ray_private(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if ray.is_initialized():  # the suite's shared cluster (conftest.ray_local), left up by an earlier module
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_one_limiter_shared_by_several_ray_actors_against_a_real_server(ray_private, monkeypatch):
    """Three validator actors, each with its own Gemini client and 4 threads, share 10 requests/s
    through the named limiter actor: the server sees the cluster-wide rate, not 3x it."""
    from nhr_ray.testing.fake_api import FakeAPIServer

    ray = ray_private
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaRAYtestKEY1234567890abcdef")

    @ray.remote(num_cpus=0)
    class Validator:
        def __init__(self, base_url, key):
            import types

            os.environ["GEMINI_API_KEY"] = key
            from nhr_ray.config import ApiConfig
            from nhr_ray.roles import BackendContext, build_backend
            from nhr_ray.runtime.ratelimit import RayLimits

            api = ApiConfig.model_validate({"gemini": {"base_url": base_url, "requests_per_minute": 600, "concurrency": 4}})
            # what the Ray layer hands every backend it hosts (runtime/actors.py)
            ctx = BackendContext("validator", 0, 0, run_config=types.SimpleNamespace(api=api), limits=RayLimits())
            self.b = build_backend("validator", "gemini", {}, ctx)
            self.b.setup()

        def ask(self, n, tag):
            import numpy as np

            from nhr_ray.roles import VLMRequest

            im = np.zeros((8, 8, 3), np.uint8)
            return [a.error for a in self.b.ask([VLMRequest(f"{tag}{i}", "edit_scores", f"{tag}{i}", [im, im]) for i in range(n)])]

    with FakeAPIServer("gemini") as srv:
        actors = [Validator.remote(srv.base_url, os.environ["GEMINI_API_KEY"]) for _ in range(3)]
        results = ray.get([a.ask.remote(12, f"a{k}-") for k, a in enumerate(actors)])
        stats = ray.get(ray.get_actor("ratelimit:gemini:gemini-2.5-flash", namespace="nhr_ray").stats.remote())
    assert all(e is None for r in results for e in r)
    assert len(srv.records) == 36 and stats["requests"] == 36  # every request went through one bucket
    t = sorted(r.t for r in srv.records)
    # 36 requests at 10/s with a burst of 10: the last cannot arrive before ~2.6 s after the first
    assert t[-1] - t[0] >= (36 - 10) / 10 * 0.9


def test_a_run_ends_its_spend_ledger_even_when_it_fails(ray_private, tmp_path, monkeypatch):
    """The run's driver opens its spend ledger (api.max_cost_usd) before any actor and ends it when
    the run ends: here the run fails at its capacity check, and this driver and its cluster live on
    (as on a long-lived cluster), yet no `ratelimit:usd:<job>` actor is left behind."""
    import nhr_ray.runtime.pipeline as pipeline
    from nhr_ray.config import load_config

    ray = ray_private
    for k, v in {"OPENAI_API_KEY": "sk-ledger-test-1234567890", "GEMINI_API_KEY": "AIzaLEDGERtest1234567890"}.items():
        monkeypatch.setenv(k, v)
    seen = []

    def full_cluster(cfg):  # the check fails as it does for pools that cannot fit
        seen.extend(a["name"] for a in ray.util.list_named_actors(all_namespaces=True))
        raise RuntimeError("the role pools need 12 GPUs, more than the 0 GPUs of this cluster")

    monkeypatch.setattr(pipeline, "check_capacity", full_cluster)
    cfg = load_config(preset="api", overrides=["output.progress=false"])
    with pytest.raises(pipeline.RunError, match="role pools need"):
        pipeline.run(cfg, tmp_path / "run")
    assert any(n.startswith("ratelimit:usd:") for n in seen), seen  # it existed while the run did
    left = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert not any(n.startswith("ratelimit:usd:") for n in left), left


def test_the_stage_actor_hands_its_backend_the_cluster_wide_limits(ray_private):
    """A backend hosted by the Ray layer (StageActor) gets RayLimits through its context: its calls
    go through the named limiter actor every actor of the cluster shares, not an in-process bucket."""
    import numpy as np

    from nhr_ray.config import load_config
    from nhr_ray.records import Source
    from nhr_ray.runtime.actors import StageActor
    from nhr_ray.stages.gate import GateStage
    from nhr_ray.testing.fake_api import FakeAPIServer

    ray = ray_private
    key = "AIzaSTAGEactorKEY1234567890abcdef"
    with FakeAPIServer("gemini") as srv:
        named = [f"{k}={v}" for k, v in sim_except("gate").items()]  # a real gate: every other role named
        cfg = load_config(None, overrides=[*named, "roles.gate.backend=gemini", f"api.gemini.base_url={srv.base_url}",
                                           "api.gemini.requests_per_minute=6000", "roles.gate.num_gpus=0"])  # fmt: skip
        actor = StageActor.options(num_cpus=0, runtime_env={"env_vars": {"GEMINI_API_KEY": key}}).remote(
            GateStage, cfg.model_dump_json(), "gate"
        )
        img = np.zeros((8, 8, 3), np.uint8)
        sources = [Source(f"s.n0{i}", "s", "a cup", i, 8, 8, img) for i in range(2)]
        (r,) = ray.get(actor.run.remote(sources))
        tally = r.tally
        limiter = ray.get_actor("ratelimit:gemini:gemini-2.5-flash", namespace="nhr_ray")
        stats = ray.get(limiter.stats.remote())
    assert tally.n_in == 2 and len(srv.records) == 2
    assert stats["requests"] == 2  # every request booked on the cluster's bucket
    ray.kill(limiter)
