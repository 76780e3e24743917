"""A node removed from a multi-node cluster mid-run: its actors restart elsewhere, lost batches are
re-issued, and the run ends with exactly the triplets of an uninterrupted run."""

import threading
import time

import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from conftest import small_config
from nhr_ray.runtime.pipeline import run
from test_faults_resume import SETS, triplets, uninterrupted


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    workers = [c.add_node(num_cpus=8, num_gpus=8) for _ in range(2)]
    ray.init(address=c.address, logging_level="ERROR")
    c.wait_for_nodes()
    yield c, workers
    ray.shutdown()
    c.shutdown()


def test_node_removed_mid_run(cluster, shared_run, tmp_path):
    c, workers = cluster
    expected = triplets(uninterrupted(shared_run))  # the same config, mined once per session

    out = tmp_path / "lost"
    removed = threading.Event()

    def remove_a_busy_node():
        deadline = time.time() + 300
        while time.time() < deadline:
            if list(out.glob("data/attempts-*.parquet")):
                # the worker node hosting an editor actor of this run
                names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].endswith("-editor-0")]
                if names:
                    node_id = ray.get(ray.get_actor(names[0]).setup.remote())  # setup() answers its node id
                    victim = next(w for w in workers if w.node_id == node_id)
                    c.remove_node(victim)
                    removed.set()
                    return
            time.sleep(0.05)

    t = threading.Thread(target=remove_a_busy_node, daemon=True)
    t.start()
    res = run(small_config(**SETS), out)
    t.join(timeout=5)
    assert removed.is_set(), "the run finished before a node could be removed"
    assert res["manifest"]["reissued_batches"] >= 1
    ids = pq.read_table(sorted((out / "data").glob("attempts-*.parquet")), columns=["attempt_id"]).column("attempt_id").to_pylist()
    assert len(ids) == len(set(ids)) == res["manifest"]["scheduler"]["jobs_total"]
    assert triplets(out) == expected
