import os
import tempfile
from pathlib import Path

import pytest

# The suite's own private clusters run without Ray's token authentication (fewer moving parts per
# test; nothing else can reach a test cluster for long). Runs keep it on everywhere else
# (runtime/cluster.py), and tests/test_ray_auth.py and tests/test_job_secrets.py clear this for the
# processes they start, to check that a cluster takes no driver without its token.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("RAY_ADDRESS", None)
# The HF datasets cache is machine-wide and keyed partly by folder name: a test session gets its own,
# so an earlier session's export under the same name is never served back.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="nhr-test-hf-datasets-")

from conftest_models import tiny_models  # noqa: E402,F401  (session fixture: tiny real checkpoints)


@pytest.fixture(scope="session")
def _ray_local_session():
    """{'session': the Ray session name of the suite's shared local cluster} while one is up."""
    state: dict[str, str] = {}
    yield state
    import ray

    if ray.is_initialized() and _ray_session() == state.get("session"):
        ray.shutdown()


def _ray_session() -> str:
    import ray

    return ray._private.worker.global_worker.node.session_name


@pytest.fixture(scope="module")
def ray_local(_ray_local_session):
    """A private local Ray cluster declaring 16 GPUs it does not have. One cluster serves the modules
    that ask for it one after another (starting one costs seconds, many times over a suite); it starts
    again after a module that made a cluster of its own (and shut this one down first). A test leaves
    it as it found it: its runs' actors end with them, and what it starts itself it stops."""
    import ray

    shared = _ray_local_session
    if not (ray.is_initialized() and _ray_session() == shared.get("session")):
        if ray.is_initialized():
            ray.shutdown()
        ray.init(address="local", num_cpus=16, num_gpus=16, include_dashboard=False, logging_level="ERROR")
        shared["session"] = _ray_session()
    yield ray


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory):
    """shared_run(name, cfg, copy_to=None) -> (out, result): a run several modules read or compare
    against, mined once per session on whatever cluster is joined when it is first asked for (or a
    private one). Sound across clusters because a run's triplets and images do not depend on the
    cluster or on where its work ran (the tests comparing against it check exactly that). copy_to:
    a private copy of the finished run folder there, for a module that changes or re-runs it. A name
    asked for again with another config is an error, not a silent reuse."""
    done: dict[str, tuple] = {}

    def get(name: str, cfg, copy_to=None):
        import shutil

        from nhr_ray.runtime.pipeline import run

        key = cfg.model_dump_json()
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "run"
            done[name] = (key, out, run(cfg, out))
        assert done[name][0] == key, f"shared_run({name!r}) asked for with another config"
        _, out, res = done[name]
        if copy_to is not None:
            out = Path(shutil.copytree(out, copy_to))
        return out, res

    return get


def sim_except(*real: str) -> dict[str, str]:
    """`roles.<r>.backend: sim` for every role but `real`: a config that names a real backend for a
    role must name every role's (config/cluster.py), so a test mixing one real role says so."""
    from nhr_ray.roles import ROLE_KINDS

    return {f"roles.{r}.backend": "sim" for r in ROLE_KINDS if r not in real}


def small_config(**overrides):
    """The default simulation config, shrunk to a few seconds of work."""
    from nhr_ray.config import load_config

    sets = {
        "task.num_scenes": 12,
        "task.items_per_request": 6,
        "sources.seeds_per_prompt": 3,
        "scheduler.budget_gpu_hours": None,
        "output.progress": False,
        "output.shard_rows": 64,
    }
    sets.update(overrides)
    return load_config(overrides=[f"{k}={'null' if v is None else v}" for k, v in sets.items()])


# --- ending the test process ----------------------------------------------------------------------
# A CI run once ended in SIGSEGV (exit 139) after pytest had printed "234 passed": during interpreter
# finalization, with Ray's core worker, gRPC, torch, OpenCV and pyarrow's S3 client all loaded and
# already shut down. No test could observe it and it did not recur in 5 full runs here. The exit
# status must be the tests' verdict, so once every plugin has reported (this hook runs last) the
# process ends with pytest's own status, skipping only the native modules' teardown. A crash while
# tests run still kills pytest with a signal, and .ci/run sets PYTHONFAULTHANDLER so its stack prints.
_exit_status: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _exit_status and os.environ.get("NHR_TEST_NATIVE_TEARDOWN") != "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
