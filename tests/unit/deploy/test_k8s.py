"""deploy/k8s, offline: every kustomization builds, and kubeconform finds each resource valid
against the Kubernetes schemas (strict: a field the API does not have is an error) and the
operators' resources' schemas; a planted mistake of each kind is caught. The shape's own rules
(the runtime's command and its process count, names that must agree) are checked on the build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
TOOLS = REPO / ".cache" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/single-host", "overlays/production"]


def tool(name: str) -> str:
    path = TOOLS / "bin" / name
    assert path.exists(), f"{path} is missing: `make k8s-tools` installs it"
    return str(path)


def build(kustomization: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("kustomize"), "build", str(K8S / kustomization)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kubeconform's verdict per resource (missing schemas are errors, not skips)."""
    kube = TOOLS / "schemas" / "kubernetes" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    crds = K8S / "schemas" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
    out = subprocess.run(
        [tool("kubeconform"), "-strict", "-output", "json", "-verbose",
         "-schema-location", str(kube), "-schema-location", str(crds), "-"],
        input=yaml.safe_dump_all(resources), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)["resources"]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return {k: build(k) for k in KUSTOMIZATIONS}


def test_every_kustomization_is_valid(built):
    for name, resources in built.items():
        verdicts = validate(resources)
        assert len(verdicts) == len(resources) >= 20, name
        bad = [v for v in verdicts if v["status"] != "statusValid"]
        assert not bad, (name, bad)
        kinds = {r["kind"] for r in resources}
        assert {"Redpanda", "ClickHouseInstallation", "ClickHouseKeeperInstallation",
                "StatefulSet", "HorizontalPodAutoscaler"} <= kinds, (name, kinds)  # fmt: skip


def _misspelt_statefulset(rs):
    find(rs, "StatefulSet", "cqrs-runtime")["spec"]["replica"] = 2


def _string_port(rs):
    pod = find(rs, "Deployment", "cqrs-edge")["spec"]["template"]["spec"]
    pod["containers"][0]["ports"][0]["containerPort"] = "http"


def _misspelt_layout(rs):
    chi = find(rs, "ClickHouseInstallation", "cqrs")
    chi["spec"]["configuration"]["clusters"][0]["layout"]["shardCount"] = 2


def _even_keeper(rs):
    chk = find(rs, "ClickHouseKeeperInstallation", "keeper")
    chk["spec"]["configuration"]["clusters"][0]["layout"]["replicasCount"] = 2


def _unknown_kind(rs):
    rs.append({"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}})


@pytest.mark.parametrize(
    "plant", [_misspelt_statefulset, _string_port, _misspelt_layout, _even_keeper, _unknown_kind]
)
def test_a_planted_mistake_is_caught(built, plant):
    resources = json.loads(json.dumps(built["base"]))
    plant(resources)
    bad = [v for v in validate(resources) if v["status"] != "statusValid"]
    assert len(bad) == 1, bad


def test_the_runtime_pods_form_one_cluster(built):
    for name, resources in built.items():
        sts = find(resources, "StatefulSet", "cqrs-runtime")
        headless = find(resources, "Service", sts["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None", name
        assert headless["spec"]["publishNotReadyAddresses"] is True, name  # found while starting
        assert sts["spec"]["podManagementPolicy"] == "Parallel", name
        assert [v["metadata"]["name"] for v in sts["spec"]["volumeClaimTemplates"]] == ["data"]
        container = sts["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        processes = int(env["CQRS_PROCESSES"]["value"])
        assert sts["spec"]["replicas"] == processes, name  # a pod per process
        assert int(container["resources"]["requests"]["cpu"]) == 1, name  # a core each
        index = env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert index == "metadata.labels['apps.kubernetes.io/pod-index']", name
        chi = find(resources, "ClickHouseInstallation", "cqrs")
        clusters = [c["name"] for c in chi["spec"]["configuration"]["clusters"]]
        assert env["CQRS_CLICKHOUSE_CLUSTER"]["value"] in clusters, name
        # the API is pod 0's, reached by its stable name (members) and by cqrs-api (users)
        api = find(resources, "Service", "cqrs-api")["spec"]
        assert api["selector"]["apps.kubernetes.io/pod-index"] == "0", name
        hosts = env["CQRS_ALLOWED_HOSTS"]["value"].split(",")
        assert {"cqrs-api", f"cqrs-runtime-0.{headless['metadata']['name']}"} <= set(hosts), name
        # the pod's command, with the runtime swapped for echo: the flags `cqrs run` takes
        script = container["args"][0].replace("exec cqrs run", "echo")
        ran = subprocess.run(
            ["sh", "-c", script], capture_output=True, text=True, check=True, timeout=10,
            env={"CQRS_PROCESSES": "3", "CQRS_SPEC": "s.yaml", "POD_INDEX": "2",
                 "CLUSTER_PORT": env["CLUSTER_PORT"]["value"], "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        port = env["CLUSTER_PORT"]["value"]
        addresses = ",".join(f"cqrs-runtime-{i}.cqrs-runtime:{port}" for i in range(3))
        assert ran.stdout.split() == ["s.yaml", "--addresses", addresses, "--process-id", "2"]
        ports = {p["name"]: p["port"] for p in headless["spec"]["ports"]}
        assert ports["cluster"] == int(port), name


def test_the_shape_of_the_stack(built):
    base = built["base"]
    layout = find(base, "ClickHouseInstallation", "cqrs")["spec"]["configuration"]["clusters"][0]
    assert layout["layout"] == {"shardsCount": 2, "replicasCount": 2}
    hpa = find(base, "HorizontalPodAutoscaler", "cqrs-edge")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "cqrs-edge"}  # fmt: skip
    for kind, name in (("StatefulSet", "cqrs-runtime"), ("Deployment", "cqrs-edge")):
        annotations = find(base, kind, name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
    for pod in (r["spec"]["template"]["spec"] for r in base if "template" in r.get("spec", {})):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    services = [r for r in base if r["kind"] == "Service"]
    assert all(r["spec"].get("type", "ClusterIP") == "ClusterIP" for r in services)
    dashboards = next(r for r in base if r["metadata"]["name"].startswith("grafana-dashboards"))
    on_disk = {p.name for p in (REPO / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert set(dashboards["data"]) == on_disk
    grafana = find(base, "Deployment", "grafana")["spec"]["template"]["spec"]
    maps = {v["configMap"]["name"] for v in grafana["volumes"]}
    assert dashboards["metadata"]["name"] in maps  # the generated (hashed) name, referenced
