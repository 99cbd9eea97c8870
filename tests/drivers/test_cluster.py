"""Cluster safety checks: every refusal is clear and leaves the cluster untouched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gameday.drivers.cluster import Access, preflight_cluster, required_access
from gameday.errors import RefusedError
from gameday.models import Environment, Scenario
from gameday.procs import free_port
from tests.fakes.k8s_api import FakeKubernetes

NS = "chaos-testing"
OPT_IN = {"chaos.gameday.io/enabled": "true"}


def environment(driver: str = "chaos_mesh", namespace: str = NS,
                allowed: tuple[str, ...] = (NS,)) -> Environment:
    endpoint: dict[str, Any] = {"service": "user-service", "driver": driver,
                                "namespace": namespace, "selector": {"app": "user-service"}}
    if driver == "configmap":
        endpoint["configmap"] = "gameday-fault-rules"
    if driver == "proxy":
        endpoint = {"service": "user-service", "driver": "proxy",
                    "admin_url": "http://127.0.0.1:1"}
    call = endpoint | {"dependency": "auth-service"}
    return Environment.model_validate({
        "name": "staging", "prometheus": {"url": "http://prometheus:9090"},
        "allowed_targets": ["user-service"], "allowed_namespaces": list(allowed),
        "endpoints": [endpoint, call]})


def scenario(fault: dict[str, Any], dependency: str | None = "auth-service") -> Scenario:
    return Scenario.model_validate({
        "name": "probe", "description": "d", "owner": "o", "environments": ["staging"],
        "target": {"service": "user-service", "dependency": dependency},
        "fault": fault, "steps": [{"dwell": "10s"}], "guards": {"errors": "> 5"}})


LATENCY = scenario({"kind": "latency", "ms": 100})
CPU = scenario({"kind": "cpu", "load_percent": 50}, dependency=None)


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        fake.add_namespace(NS, OPT_IN)
        fake.add_pods(NS, {"app": "user-service"}, count=2)
        fake.add_pods(NS, {"app": "auth-service"})
        fake.add_configmap(NS, "gameday-fault-rules", {"rules.json": '{"rules": []}'})
        yield fake


def refused(fake: FakeKubernetes, env: Environment, scen: Scenario, match: str) -> None:
    with pytest.raises(RefusedError, match=match):
        preflight_cluster(env, scen, fake.api_client())
    assert fake.writes == []


@pytest.mark.parametrize(("driver", "scen"), [("chaos_mesh", LATENCY), ("chaos_mesh", CPU),
                                              ("configmap", LATENCY)])
def test_a_ready_cluster_passes_without_writing(fake: FakeKubernetes, driver: str,
                                               scen: Scenario) -> None:
    """A labelled namespace, CRDs, access and ready pods: preflight passes and writes nothing."""
    preflight_cluster(environment(driver), scen, fake.api_client())
    assert fake.writes == []


def test_a_namespace_outside_the_allow_list_is_refused(fake: FakeKubernetes) -> None:
    """An endpoint namespace not in allowed_namespaces is refused."""
    fake.add_namespace("payments", OPT_IN)
    refused(fake, environment(namespace="payments"), LATENCY, "not in environment 'staging'")


def test_kube_system_is_never_a_target(fake: FakeKubernetes) -> None:
    """Kubernetes' own namespaces are refused even when listed."""
    refused(fake, environment(namespace="kube-system", allowed=(NS,)), LATENCY,
            "belongs to Kubernetes itself")


def test_a_namespace_without_the_opt_in_label_is_refused(fake: FakeKubernetes) -> None:
    """The namespace must carry chaos.gameday.io/enabled=true."""
    fake.namespaces[NS] = {}
    refused(fake, environment(), LATENCY, "chaos.gameday.io/enabled=true")


def test_a_missing_namespace_is_refused(fake: FakeKubernetes) -> None:
    """A namespace that does not exist is refused."""
    del fake.namespaces[NS]
    refused(fake, environment(), LATENCY, "does not exist")


def test_missing_chaos_mesh_crds_are_refused(fake: FakeKubernetes) -> None:
    """Without Chaos Mesh's CRDs the run is refused, naming the missing one."""
    fake.crds.discard("networkchaos")
    refused(fake, environment(), LATENCY, "networkchaos.chaos-mesh.org is missing")


def test_a_denied_access_review_creates_nothing(fake: FakeKubernetes) -> None:
    """A verb the identity lacks is refused, naming the verb, resource and namespace."""
    fake.deny("create", "networkchaos")
    fake.deny("patch", "httpchaos")
    refused(fake, environment(), LATENCY,
            "may not: create chaos-mesh.org/networkchaos in chaos-testing.*"
            "patch chaos-mesh.org/httpchaos in chaos-testing")
    assert fake.created == []


def test_missing_or_unready_targets_are_refused(fake: FakeKubernetes) -> None:
    """No matching pod, or a pod that is not Ready, refuses the run."""
    fake.pods[NS] = [p for p in fake.pods[NS] if p["metadata"]["labels"]["app"] != "auth-service"]
    refused(fake, environment(), LATENCY, "dependency 'auth-service': no pod matches")
    fake.add_pods(NS, {"app": "auth-service"}, ready=False)
    refused(fake, environment(), LATENCY, "pods not ready")


def test_a_missing_rules_configmap_is_refused(fake: FakeKubernetes) -> None:
    """A configmap endpoint needs its ConfigMap."""
    fake.configmaps.clear()
    refused(fake, environment("configmap"), LATENCY, "ConfigMap chaos-testing/gameday-fault-rules")


def test_an_unreachable_cluster_is_refused() -> None:
    """If the API does not answer, the run is refused (not crashed)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = False
    with pytest.raises(RefusedError, match="did not answer"):
        preflight_cluster(environment(), LATENCY, client.ApiClient(configuration))


def test_endpoints_off_kubernetes_are_not_checked() -> None:
    """Proxy endpoints pass without any client being built."""
    preflight_cluster(environment("proxy"), LATENCY)


def test_required_access_lists_every_verb() -> None:
    """Chaos kinds: create/get/delete/patch for the fault's kinds, list on all kinds."""
    needed = {str(a) for a in required_access(environment(), environment().endpoints[1],
                                               "latency")}
    for verb in ("create", "get", "delete", "patch"):
        assert f"{verb} chaos-mesh.org/networkchaos in {NS}" in needed
        assert f"{verb} chaos-mesh.org/httpchaos in {NS}" in needed
    for plural in ("podchaos", "stresschaos", "httpchaos", "networkchaos"):
        assert f"list chaos-mesh.org/{plural} in {NS}" in needed
    assert Access("list", "", "pods", NS) in required_access(
        environment(), environment().endpoints[1], "latency")
