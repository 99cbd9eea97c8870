"""The Kubernetes manifests in deploy/k8s: valid offline, and consistent with the kit's code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gameday.drivers.chaos_specs import GROUP, PLURALS
from gameday.drivers.cluster import Access, required_access
from gameday.faults import FAULT_KINDS, kinds_for
from gameday.injector.rules import Rule
from gameday.models import Endpoint, Environment

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
#: An older release still common in clusters, and the newest the validator knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
RUNNER = ("gameday", "gameday-runner")


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCS = documents()


def kinds(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in kinds(kind) if d["metadata"]["name"] == name]
    return doc


def test_there_are_manifests() -> None:
    """deploy/k8s holds the namespaces, RBAC, ConfigMap, example service and worker."""
    names = {name.split(":")[1] for name, _ in DOCS}
    assert {"Namespace/chaos-testing", "ServiceAccount/gameday-runner", "Role/gameday-chaos",
            "ConfigMap/gameday-fault-rules", "Deployment/user-service",
            "Deployment/prefect-worker"} <= names


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("where", "doc"), DOCS, ids=[name for name, _ in DOCS])
def test_every_manifest_validates(where: str, doc: dict[str, Any], version: str) -> None:
    """Each document validates (strict: no unknown fields) against the Kubernetes schemas."""
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_chaos_namespace_opts_in() -> None:
    """chaos-testing carries the opt-in label; the orchestration namespace does not."""
    assert named("Namespace", "chaos-testing")["metadata"]["labels"][
        "chaos.gameday.io/enabled"] == "true"
    assert "chaos.gameday.io/enabled" not in named("Namespace", "gameday")["metadata"]["labels"]


def grants(namespace: str | None) -> list[dict[str, Any]]:
    """RBAC rules bound to the runner in ``namespace`` (None: cluster-wide)."""
    role_kind, binding_kind = ("Role", "RoleBinding") if namespace else ("ClusterRole",
                                                                        "ClusterRoleBinding")
    rules = []
    for binding in kinds(binding_kind):
        if binding["metadata"].get("namespace") != namespace:
            continue
        subjects = {(s.get("namespace"), s["name"]) for s in binding["subjects"]}
        if RUNNER in subjects:
            role = binding["roleRef"]["name"]
            rules += [r for doc in kinds(role_kind) if doc["metadata"]["name"] == role
                      and doc["metadata"].get("namespace") == namespace for r in doc["rules"]]
    return rules


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str,
            name: str | None = None) -> bool:
    return any(verb in r["verbs"] and group in r["apiGroups"] and resource in r["resources"]
               and (not r.get("resourceNames") or name in r["resourceNames"]) for r in rules)


#: Kinds only the proxy's TCP mode or a fault point injects: the catalog refuses them on
#: cluster endpoints.
TCP_ONLY = set(kinds_for("tcp")) - set(kinds_for("http"))
POINT_ONLY = set(kinds_for("point")) - set(kinds_for("http")) - set(kinds_for("tcp"))


@pytest.mark.parametrize("fault_kind", sorted(set(FAULT_KINDS) - TCP_ONLY - POINT_ONLY))
@pytest.mark.parametrize("driver", ["chaos_mesh", "configmap"])
def test_the_runner_may_do_what_preflight_asks(fault_kind: str, driver: str) -> None:
    """The runner's Role grants every access the preflight's access review checks."""
    environment = Environment.model_validate({
        "name": "staging", "prometheus": {"url": "http://p:9090"},
        "allowed_namespaces": ["chaos-testing"]})
    endpoint = Endpoint.model_validate({
        "service": "user-service", "driver": driver, "namespace": "chaos-testing",
        "selector": {"app": "user-service"},
        "configmap": "gameday-fault-rules" if driver == "configmap" else None})
    needed: list[Access] = required_access(environment, endpoint, fault_kind)
    for access in needed:
        assert allowed(grants(access.namespace), access.verb, access.group, access.resource,
                       access.name), f"the runner may not {access}"


def test_the_runner_may_read_what_preflight_reads() -> None:
    """Cluster-wide, the runner may read the chaos namespace and Chaos Mesh's CRDs, by name."""
    cluster = grants(None)
    assert allowed(cluster, "get", "", "namespaces", "chaos-testing")
    for plural in PLURALS.values():
        assert allowed(cluster, "get", "apiextensions.k8s.io", "customresourcedefinitions",
                       f"{plural}.{GROUP}")


def test_rbac_is_least_privilege() -> None:
    """No wildcards, no secrets, and cluster-wide rules are limited by resource name."""
    for doc in kinds("Role") + kinds("ClusterRole"):
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc
            assert "secrets" not in rule["resources"], doc
            if doc["kind"] == "ClusterRole":
                assert rule.get("resourceNames") and rule["verbs"] == ["get"], doc


def test_the_rules_configmap_is_an_empty_rules_document() -> None:
    """The ConfigMap starts as {"rules": []}, the format the transport and driver read."""
    data = named("ConfigMap", "gameday-fault-rules")["data"]
    document = json.loads(data["rules.json"])
    assert document == {"rules": []}
    assert [Rule.model_validate(r) for r in document["rules"]] == []


def test_the_sidecar_proxy_listens_on_loopback_only() -> None:
    """The example's fault proxy takes traffic and admin calls on 127.0.0.1 only."""
    pod = named("Deployment", "user-service")["spec"]["template"]["spec"]
    [proxy] = [c for c in pod["containers"] if c["name"] == "fault-proxy"]
    command = proxy["command"]
    assert command[:2] == ["chaosctl", "proxy"]
    for flag in ("--listen", "--admin"):
        assert command[command.index(flag) + 1].startswith("127.0.0.1:")
    assert command[command.index("--upstream") + 1].startswith("http://auth-service.")
    [app] = [c for c in pod["containers"] if c["name"] == "app"]
    assert {"name": "fault-rules", "mountPath": "/etc/gameday", "readOnly": True} in \
        app["volumeMounts"]


def test_the_worker_serves_the_kubernetes_work_pool() -> None:
    """The Prefect worker starts a Kubernetes-type worker for the gameday-k8s pool."""
    pod = named("Deployment", "prefect-worker")["spec"]["template"]["spec"]
    [worker] = pod["containers"]
    command = worker["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    assert command[command.index("--type") + 1] == "kubernetes"
    assert command[command.index("--pool") + 1] == "gameday-k8s"
    assert pod["serviceAccountName"] == "prefect-worker"
