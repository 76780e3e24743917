"""cluster/: the launcher YAMLs pass Ray's own schema, the KubeRay manifests carry what RayCluster and
RayJob need, the pipeline config loads as `nhr-ray run` would load it and fits the GPU nodes, and the
Grafana dashboard only queries metrics nhr-ray exports. Seconds, no cluster."""

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
LAUNCHERS = ["aws-gpu.yaml", "gcp-gpu.yaml"]
GPUS_PER_NODE = 8
METRICS = {  # name -> Prometheus type, as Ray exports them (ray_ prefix, counters end in _total)
    "ray_nhr_stage_rows_total": "counter", "ray_nhr_queue_depth": "gauge", "ray_nhr_gpu_hours": "gauge",
    "ray_nhr_budget_remaining_gpu_hours": "gauge", "ray_nhr_api_tokens_total": "counter",
    "ray_nhr_api_cost_usd_total": "counter", "ray_nhr_call_latency_seconds": "histogram",
    "ray_nhr_triplets_total": "counter",
}  # fmt: skip
SECRET_RE = re.compile(r"(sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{20,})")


def _yaml(name):
    return yaml.safe_load((CLUSTER / name).read_text())


def _ray_schema():
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_yaml_passes_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _yaml(name)
    jsonschema.validate(cfg, _ray_schema())  # the file as written
    validate_config(prepare_config(cfg))  # and as `ray up` fills it with the provider's defaults
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0
    gpu = [t for n, t in types.items() if t["resources"].get("GPU")]
    assert gpu and all(t["resources"]["GPU"] == GPUS_PER_NODE for t in gpu)
    assert all(t["min_workers"] == 0 and 4 <= t["max_workers"] <= cfg["max_workers"] for t in gpu)
    assert 0 < cfg["idle_timeout_minutes"] <= 30
    start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start


def test_kuberay_raycluster_fields():
    rc = _yaml("kuberay-raycluster.yaml")
    assert rc["apiVersion"] == "ray.io/v1" and rc["kind"] == "RayCluster"
    spec = rc["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and isinstance(head["rayStartParams"], dict)
    head_c = head["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head_c["resources"].get("limits", {})
    groups = spec["workerGroupSpecs"]
    assert groups
    for g in groups:
        assert {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"} <= set(g)
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] and g["maxReplicas"] >= 4
        c = g["template"]["spec"]["containers"][0]
        assert int(c["resources"]["limits"]["nvidia.com/gpu"]) == GPUS_PER_NODE
        assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
    # every ray-start parameter is a string (KubeRay passes them through as strings)
    for params in [head["rayStartParams"]] + [g["rayStartParams"] for g in groups]:
        assert all(isinstance(v, str) for v in params.values()), params
    # API keys only by reference to a Secret, in every group (the API roles may land on any pod)
    for c in [head_c] + [g["template"]["spec"]["containers"][0] for g in groups]:
        env = {e["name"]: e for e in c["env"]}
        for key in ("OPENAI_API_KEY", "GEMINI_API_KEY"):
            assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["key"] == key


def test_kuberay_rayjob_fields():
    job, rc = _yaml("kuberay-rayjob.yaml"), _yaml("kuberay-raycluster.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].split()[:4] == ["python", "-m", "nhr_ray", "run"] and "--out" in spec["entrypoint"]
    assert spec["clusterSelector"]["ray.io/cluster"] == rc["metadata"]["name"]
    assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)
    # the config the entrypoint names is the one shipped in cluster/
    cfg_path = next(w for w in spec["entrypoint"].split() if w.endswith(".yaml"))
    assert (CLUSTER / Path(cfg_path).name).is_file()


def test_dashboard_binds_beyond_loopback_only_with_a_comment():
    for f in sorted(CLUSTER.glob("*.yaml")):
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            if "0.0.0.0" in line and not line.lstrip().startswith("#"):
                before = " ".join(lines[max(0, i - 6) : i])
                assert "0.0.0.0" in before and "#" in before, f"{f.name}:{i + 1} binds 0.0.0.0 without saying why"


def test_no_secret_written_in_cluster_files():
    for f in sorted(CLUSTER.iterdir()):
        text = f.read_text()
        assert not SECRET_RE.search(text), f.name
        for key in ("OPENAI_API_KEY", "GEMINI_API_KEY"):
            assert not re.search(rf"{key}\s*[:=]\s*['\"]?[A-Za-z0-9]", text), f"{f.name} sets {key}"


def test_pipeline_config_loads_and_fits_the_gpu_nodes():
    """Loaded exactly as `nhr-ray run cluster/pipeline-h100.yaml` loads it: every backend name
    (flux, diffusers, vllm, gemini, openai) is registered and every option checked."""
    from nhr_ray.config import load_config
    from nhr_ray.roles import ROLE_KINDS

    cfg = load_config(CLUSTER / "pipeline-h100.yaml")
    backends = {r: cfg.role(r).backend for r in ROLE_KINDS}
    assert backends == {"designer": "openai", "t2i": "flux", "gate": "vllm", "editor": "diffusers",
                        "prefilter": "vllm", "validator": "gemini", "inverter": "gemini"}  # fmt: skip
    pre = cfg.role("prefilter")
    assert pre.options["tensor_parallel_size"] == pre.num_gpus == 4
    gpu_roles = [cfg.role(r) for r in ROLE_KINDS if cfg.role(r).num_gpus > 0]
    assert all(GPUS_PER_NODE % rc.num_gpus == 0 for rc in gpu_roles)  # whole actors per 8-GPU node
    total = sum(rc.actors * rc.num_gpus for rc in gpu_roles)
    nodes = -(-total // GPUS_PER_NODE)
    assert total == nodes * GPUS_PER_NODE, "pools leave GPUs of a node idle"
    for name in LAUNCHERS:
        gpu_types = [t for t in _yaml(name)["available_node_types"].values() if t["resources"].get("GPU")]
        assert sum(t["max_workers"] for t in gpu_types) >= nodes
    max_replicas = sum(g["maxReplicas"] for g in _yaml("kuberay-raycluster.yaml")["spec"]["workerGroupSpecs"])
    assert max_replicas >= nodes
    assert cfg.ray.address is None and cfg.output.progress is False
    api_roles = [r for r in ROLE_KINDS if cfg.role(r).backend in ("openai", "gemini")]
    assert all(cfg.role(r).num_gpus == 0 for r in api_roles)


def test_pipeline_config_caps_what_its_api_roles_can_spend():
    """The hosted APIs are where a run spends money: the cluster config sets a spend limit and
    cluster-wide rate limits, and every API role has a priced model and an output cap per call."""
    from nhr_ray.config import load_config
    from nhr_ray.roles import ROLE_KINDS, backend_class

    cfg = load_config(CLUSTER / "pipeline-h100.yaml")
    assert cfg.api.max_cost_usd is not None and 0 < cfg.api.max_cost_usd <= 1000
    for provider in (cfg.api.openai, cfg.api.gemini):
        assert provider.requests_per_minute and provider.tokens_per_minute
    caps = {}
    for role in ROLE_KINDS:
        rc = cfg.role(role)
        if rc.backend in ("openai", "gemini"):
            opts = backend_class(role, rc.backend).Options.model_validate(rc.options)
            assert cfg.api.price(opts.model or getattr(cfg.api, rc.backend).model) is not None, role
            caps[role] = getattr(opts, "max_output_tokens", None) or getattr(opts, "max_completion_tokens", None)
    assert set(caps) == {"designer", "validator", "inverter"} and all(caps.values()), caps
    assert caps["validator"] <= 256  # a judge answers with two scores
    assert cfg.role("inverter").options["thinking_budget"] == 0  # 2.5 Flash would think, billed as output


def test_grafana_dashboard_queries_only_nhr_metrics():
    dash = json.loads((CLUSTER / "grafana-nhr-ray.json").read_text())
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 8
    seen = set()
    for p in panels:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            names = set(re.findall(r"\bray_nhr_[a-z_]+", t["expr"]))
            names = {n.removesuffix("_bucket") for n in names}
            assert names and names <= set(METRICS), (p["title"], t["expr"])
            for n in names:  # rate()/increase() on counters and histograms only, never on gauges
                if METRICS[n] == "gauge":
                    assert not re.search(rf"(rate|increase)\(\s*{n}\b", t["expr"]), t["expr"]
            seen |= names
    assert seen == set(METRICS), set(METRICS) - seen  # every metric has a panel
    assert any("histogram_quantile" in t["expr"] for p in panels for t in p["targets"])


def test_autoscale_demo_config_passes_rays_schema():
    import sys

    sys.path.insert(0, str(CLUSTER.parent / "benchmarks"))
    from autoscale_demo import autoscaling_config

    cfg = autoscaling_config("127.0.0.1:6379", idle_timeout_s=6, max_workers=3)
    jsonschema.validate(cfg, _ray_schema())
    assert cfg["provider"]["type"] == "fake_multinode" and cfg["provider"]["gcs_address"]
    assert os.path.isfile(CLUSTER.parent / "benchmarks" / "autoscale_demo.py")
