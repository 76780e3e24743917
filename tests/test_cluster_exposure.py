"""cluster/ as shipped: who can reach the cluster, and what leaves the repo.

- Every cluster config turns Ray's token authentication on with a token from a secret on every
  node: the launchers copy a mode-600 token file and set RAY_AUTH_MODE=token in the containers;
  the RayCluster uses KubeRay's authOptions with a Secret (the field as the KubeRay CRD defines it).
- The NetworkPolicy (checked against the networking.k8s.io/v1 schema, strictly) admits the
  cluster's own pods on any port and the job API's own clients (RayJob submitter, KubeRay
  operator) on 8265 only; nothing from outside.
- The Docker build context (.dockerignore, emulated with Docker's matching rules) and the image's
  COPY lines, the launchers' file_mounts and rsync excludes, and a `--working-dir .` upload (Ray's
  own packaging code) never include .git, a .env, .venv or runs/. Docker itself is not run here.
Seconds, no cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHERS = ["aws-gpu.yaml", "gcp-gpu.yaml"]
# what never leaves the developer's machine, as paths inside the repo
NEVER = [".git/config", ".git/objects/ab/cdef", ".env", ".env.production", "nhr_ray/.env", "prompts/.env",
         "deploy/api-keys.env", ".venv/bin/python", ".ci-venv/bin/python", "runs/demo/manifest.json",
         "runs/demo/data/triplets-00000.parquet", "nhr_ray/__pycache__/cli.cpython-311.pyc"]  # fmt: skip
IMAGE_NEEDS = ["pyproject.toml", "README.md", "nhr_ray/__init__.py", "nhr_ray/runtime/cluster.py",
               "prompts/edit_scores.md", "cluster/pipeline-h100.yaml"]  # fmt: skip


def _yaml(name):
    return yaml.safe_load((CLUSTER / name).read_text())


# ----- token authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launchers_run_every_node_with_token_auth_and_node_side_secrets(name):
    cfg = _yaml(name)
    env = dict(
        opt.split(None, 1)[1].split("=", 1) for opt in cfg["docker"]["run_options"] if opt.startswith("--env ")
    )
    assert env["RAY_AUTH_MODE"] == "token"  # every process of every node's container
    mounts = cfg["file_mounts"]
    # Ray's default token path for the image's user (HOME=/home/ray), from the same file on your machine
    assert mounts["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    assert env["NHR_SECRETS_FILE"] in mounts and mounts[env["NHR_SECRETS_FILE"]].startswith("~/")
    text = (CLUSTER / name).read_text()
    assert "disabled" not in text and "runtime-env-json" not in text and "env_vars" not in text
    for commands in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"], cfg["setup_commands"]):
        assert not any("RAY_AUTH" in c for c in commands)  # nothing turns it off per command


# KubeRay's RayCluster CRD (ray.io_rayclusters.yaml, KubeRay >= 1.6): spec.authOptions
AUTH_OPTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enableK8sTokenAuth": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["disabled", "token"]},
        "secretName": {"type": "string"},
    },
}


def test_kuberay_cluster_takes_its_token_from_a_secret():
    rc, job = _yaml("kuberay-raycluster.yaml"), _yaml("kuberay-rayjob.yaml")
    auth = rc["spec"]["authOptions"]
    jsonschema.validate(auth, AUTH_OPTIONS_SCHEMA)
    assert auth["mode"] == "token" and auth["secretName"]
    containers = [rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [g["template"]["spec"]["containers"][0] for g in rc["spec"]["workerGroupSpecs"]]
    for c in containers:  # nothing overrides what the operator injects
        assert not {e["name"] for e in c.get("env", [])} & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}
    assert not re.search(r"KEY|TOKEN|SECRET", job["spec"]["runtimeEnvYAML"])  # nothing secret rides with the job


# ----- NetworkPolicy -----------------------------------------------------------------------------


def _strict(props: dict, required: tuple = ()) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}


# networking.k8s.io/v1 NetworkPolicy as Kubernetes' OpenAPI spec defines it (the fields a manifest
# may set), strict like `kubectl apply --validate=strict`
_SELECTOR = _strict({
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": _strict(
        {"key": {"type": "string"}, "operator": {"type": "string"}, "values": {"type": "array", "items": {"type": "string"}}},
        ("key", "operator"))},
})  # fmt: skip
_PEER = _strict({
    "podSelector": _SELECTOR, "namespaceSelector": _SELECTOR,
    "ipBlock": _strict({"cidr": {"type": "string"}, "except": {"type": "array", "items": {"type": "string"}}}, ("cidr",)),
})  # fmt: skip
_PORT = _strict({"protocol": {"enum": ["TCP", "UDP", "SCTP"]}, "port": {"type": ["integer", "string"]},
                 "endPort": {"type": "integer"}})  # fmt: skip
NETWORK_POLICY_SCHEMA = _strict({
    "apiVersion": {"const": "networking.k8s.io/v1"}, "kind": {"const": "NetworkPolicy"},
    "metadata": {"type": "object", "required": ["name"]},
    "spec": _strict({
        "podSelector": _SELECTOR,
        "policyTypes": {"type": "array", "items": {"enum": ["Ingress", "Egress"]}},
        "ingress": {"type": "array", "items": _strict({"from": {"type": "array", "items": _PEER},
                                                       "ports": {"type": "array", "items": _PORT}})},
        "egress": {"type": "array", "items": _strict({"to": {"type": "array", "items": _PEER},
                                                      "ports": {"type": "array", "items": _PORT}})},
    }, ("podSelector",)),
}, ("apiVersion", "kind", "metadata", "spec"))  # fmt: skip


def test_network_policy_admits_the_clusters_pods_and_the_job_apis_clients_only():
    pol, rc = _yaml("kuberay-networkpolicy.yaml"), _yaml("kuberay-raycluster.yaml")
    jsonschema.validate(pol, NETWORK_POLICY_SCHEMA)
    own = {"ray.io/cluster": rc["metadata"]["name"]}  # the label KubeRay puts on the cluster's pods
    spec = pol["spec"]
    assert spec["podSelector"] == {"matchLabels": own} and "Ingress" in spec["policyTypes"]
    head_ports = {p["containerPort"]: p["name"] for p in rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    for rule in spec["ingress"]:
        peers = rule.get("from")
        assert peers, "a rule without 'from' admits every source"
        assert all("ipBlock" not in p for p in peers)
        for p in peers:  # an empty selector would admit every pod (of a namespace, or of all)
            assert p.get("podSelector", {}).get("matchLabels"), p
        if peers == [{"podSelector": {"matchLabels": own}}]:
            continue  # the cluster's own pods: any port
        # anything else reaches the job API only
        assert [(p["protocol"], p["port"]) for p in rule["ports"]] == [("TCP", 8265)] and head_ports[8265] == "dashboard"
        names = [p["podSelector"]["matchLabels"] for p in peers]
        assert names == [{"ray.io/originated-from-crd": "RayJob"}, {"app.kubernetes.io/name": "kuberay-operator"}]
    assert len(spec["ingress"]) == 2


# ----- what leaves the repo: image, launcher mounts, --working-dir uploads -------------------------


def _docker_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore pattern language (moby/patternmatcher): Go's filepath.Match plus
    `**` for any number of directories, paths cleaned and relative to the context root."""
    pat = os.path.normpath(pattern).lstrip("/")
    out, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pat.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pat[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pat[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pat[i]), i + 1
    return re.compile(out)


def in_docker_context(path: str, lines: list[str]) -> bool:
    """Whether `path` reaches the build context: the last pattern matching it or one of its parent
    directories decides; `!` lets a path back in."""
    parts = path.split("/")
    candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    excluded = False
    for line in lines:
        neg = line.startswith("!")
        rx = _docker_regex(line[1:] if neg else line)
        if any(rx.fullmatch(c) for c in candidates):
            excluded = not neg
    return not excluded


def _dockerignore() -> list[str]:
    f = ROOT / ".dockerignore"  # without one, Docker sends the whole directory
    lines = f.read_text().splitlines() if f.exists() else []
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def test_docker_image_gets_only_what_it_needs():
    ignore = _dockerignore()
    for p in NEVER:
        assert not in_docker_context(p, ignore), f"{p} would be sent to the Docker build"
    for p in IMAGE_NEEDS:
        assert in_docker_context(p, ignore), f"{p} is needed by the image but ignored"
    # every file the repo has now (.git, .venv and all): only the package, its prompts and the run
    # config reach the build
    reenter = [x[1:].rstrip("/") for x in ignore if x.startswith("!")]
    for d, dirs, files in os.walk(ROOT):
        here = Path(d).relative_to(ROOT).as_posix().removeprefix(".")
        dirs[:] = [x for x in dirs if in_docker_context(f"{here}/{x}".lstrip("/"), ignore)
                   or any(r.startswith(f"{here}/{x}/".lstrip("/")) for r in reenter)]  # fmt: skip
        for f in files:
            rel = f"{here}/{f}".lstrip("/")
            if in_docker_context(rel, ignore):
                assert rel in ("pyproject.toml", "README.md", "cluster/pipeline-h100.yaml") or rel.split("/")[0] in ("nhr_ray", "prompts"), rel
    copies = []
    for line in (CLUSTER / "Dockerfile").read_text().splitlines():
        words = shlex.split(line, comments=True)
        assert not words or words[0].upper() != "ADD", line  # ADD fetches and unpacks: not needed
        if words and words[0].upper() == "COPY":
            copies += [w for w in words[1:-1] if not w.startswith("--")]
    assert copies and not {".", "./", "*", "/"} & set(copies), copies
    for src in copies:
        assert (ROOT / src).exists() and in_docker_context(src.rstrip("/"), ignore), src
        assert not any(n == src.rstrip("/") or n.startswith(src.rstrip("/") + "/") for n in NEVER if in_docker_context(n, ignore))


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launchers_mount_only_the_package_and_the_two_secret_files(name):
    cfg = _yaml(name)
    excludes = cfg.get("rsync_exclude", [])
    for target, source in cfg["file_mounts"].items():
        if source.startswith("~/"):  # the secrets, from your home: Ray's token and the API keys file
            assert target in ("/home/ray/.ray/auth_token", "/home/ray/.config/nhr-ray/api-keys.env"), target
            continue
        src = (ROOT / source).resolve()
        assert src.is_relative_to(ROOT) and src != ROOT, f"{name}: {source} mounts the whole repo or beyond"
        rel = src.relative_to(ROOT).as_posix()
        assert rel in ("pyproject.toml", "README.md", "nhr_ray", "prompts"), rel
        for p in NEVER:  # what rsync would copy from inside a mounted folder, after rsync_exclude
            if p == rel or p.startswith(rel + "/"):
                names = p[len(rel) + 1 :].split("/")
                assert any(re.fullmatch(_docker_regex(x.removeprefix("**/")), n) for x in excludes for n in names), (name, p)


def test_working_dir_upload_leaves_history_secrets_and_outputs_behind(tmp_path):
    """`ray job submit --working-dir .` zips the directory with Ray's packaging code, which honours
    .gitignore and .rayignore: run it on a copy of the repo's ignore files and a tree with them."""
    from ray._private.runtime_env.packaging import _zip_files

    for name in (".gitignore", ".rayignore"):
        if (ROOT / name).exists():
            (tmp_path / name).write_text((ROOT / name).read_text())
    for p in NEVER + IMAGE_NEEDS:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    out = tmp_path.parent / f"{tmp_path.name}.zip"
    _zip_files(str(tmp_path), [], str(out), include_gitignore=True)
    names = set(zipfile.ZipFile(out).namelist())
    assert set(IMAGE_NEEDS) <= names, set(IMAGE_NEEDS) - names
    assert not names & set(NEVER), sorted(names & set(NEVER))
