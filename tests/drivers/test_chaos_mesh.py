"""The Chaos Mesh driver against the fake Kubernetes API (real client, real CRD schemas)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from gameday.drivers import chaos_specs
from gameday.drivers.chaos_mesh import (
    PAUSE_ANNOTATION,
    ChaosMeshDriver,
    check_plan,
    refuse_invalid_plan,
)
from gameday.drivers.chaos_specs import ChaosOptions, experiment, go_duration
from gameday.errors import ChaosSpecError, DriverError, DriverUnreachable, RefusedError
from gameday.faults import (
    AbortFault,
    BandwidthFault,
    BlackholeFault,
    CpuFault,
    LatencyFault,
    Match,
    MemoryFault,
    PodKillFault,
    ResetFault,
)
from gameday.models import Target
from gameday.procs import free_port
from gameday.records import FaultSpec, Labels
from tests.contract import check_driver_contract
from tests.fakes.k8s_api import FINALIZER, FakeKubernetes

NS = "chaos-testing"
CALL = Target(service="user-service", dependency="auth-service")
SERVICE = Target(service="user-service")
LABELS = Labels(run="r42", scenario="auth-latency", environment="staging", step=2)


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(recover_after=0.2) as fake:
        fake.add_namespace(NS, {"chaos.gameday.io/enabled": "true"})
        fake.add_namespace("payments", {"chaos.gameday.io/enabled": "true"})
        yield fake


def maker(fake: FakeKubernetes, namespace: str = NS, allowed: tuple[str, ...] = (NS,),
          **options: Any) -> Callable[[], ChaosMeshDriver]:
    def make() -> ChaosMeshDriver:
        return ChaosMeshDriver(namespace, {"app": "user-service"}, allowed,
                               api_client=fake.api_client(), poll_interval=0.05, **options)
    return make


def spec(fault: Any, target: Target = CALL, labels: Labels = LABELS) -> FaultSpec:
    return FaultSpec(fault=fault, target=target, labels=labels)


CASES: list[tuple[str, Any, Target, dict[str, Any], str, dict[str, Any]]] = [
    ("latency-network", LatencyFault(ms=120, jitter_ms=10), CALL, {}, "NetworkChaos",
     {"action": "delay", "delay": {"latency": "120ms", "jitter": "10ms", "correlation": "0"},
      "direction": "to"}),
    ("latency-http", LatencyFault(ms=250), CALL, {"level": "http", "http_port": 8080},
     "HTTPChaos", {"target": "Request", "delay": "250ms", "port": 8080}),
    ("latency-matched", LatencyFault(ms=50, match=Match(methods=["GET"], path_prefix="/api")),
     CALL, {}, "HTTPChaos", {"method": "GET", "path": "/api*", "delay": "50ms"}),
    ("abort", AbortFault(status=503, probability=0.05), CALL, {}, "HTTPChaos",
     {"target": "Response", "replace": {"code": 503}, "mode": "fixed-percent", "value": "5"}),
    ("reset-network", ResetFault(probability=0.5), CALL, {}, "NetworkChaos",
     {"action": "loss", "loss": {"loss": "50", "correlation": "0"}}),
    ("reset-http", ResetFault(), CALL, {"level": "http"}, "HTTPChaos",
     {"target": "Request", "abort": True}),
    ("blackhole", BlackholeFault(), CALL, {}, "NetworkChaos",
     {"action": "partition", "direction": "to", "mode": "all"}),
    ("bandwidth", BandwidthFault(kbps=512), CALL, {}, "NetworkChaos",
     {"action": "bandwidth", "bandwidth": {"rate": "64000bps", "limit": 20971520,
                                           "buffer": 10000}}),
    ("cpu", CpuFault(workers=2, load_percent=40), SERVICE, {}, "StressChaos",
     {"stressors": {"cpu": {"workers": 2, "load": 40}}}),
    ("memory", MemoryFault(mb=256), SERVICE, {}, "StressChaos",
     {"stressors": {"memory": {"workers": 1, "size": "256MB"}}}),
    ("pod-kill-count", PodKillFault(count=1), SERVICE, {}, "PodChaos",
     {"action": "pod-kill", "mode": "fixed", "value": "1"}),
    ("pod-kill-percent", PodKillFault(percent=50), SERVICE, {}, "PodChaos",
     {"action": "pod-kill", "mode": "fixed-percent", "value": "50"}),
]


@pytest.mark.parametrize(("fault", "target", "options", "kind", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_contract_for_every_kind(fake: FakeKubernetes, fault: Any, target: Target,
                                 options: dict[str, Any], kind: str,
                                 expected: dict[str, Any]) -> None:
    """Each fault becomes a valid, labelled experiment lasting the TTL; the contract holds."""
    handle = check_driver_contract(maker(fake, **options), spec(fault, target), ttl=30)
    [created] = fake.created
    assert created["kind"] == kind == handle.extra["kind"]
    assert created["spec"]["duration"] == "30s"
    assert created["metadata"]["labels"] == {
        "chaos.gameday.io/run": "r42", "chaos.gameday.io/scenario": "auth-latency",
        "chaos.gameday.io/environment": "staging", "chaos.gameday.io/step": "2",
        "app.kubernetes.io/managed-by": "gameday"}
    for key, value in expected.items():
        assert created["spec"][key] == value, key
    assert fake.chaos_objects() == []


def test_network_faults_go_from_the_service_towards_the_dependency(fake: FakeKubernetes) -> None:
    """NetworkChaos selects the service's pods and targets the dependency's pods by label."""
    driver = maker(fake, dependency_label="app.kubernetes.io/name")()
    driver.apply(spec(LatencyFault(ms=100)), ttl=30)
    [created] = fake.created
    assert created["spec"]["selector"]["labelSelectors"] == {"app": "user-service"}
    assert created["spec"]["target"]["selector"]["labelSelectors"] == {
        "app.kubernetes.io/name": "auth-service"}


@pytest.mark.parametrize(("change", "complaint"), [
    ({"duration": "30"}, "spec.duration"),
    ({"selector": {"namespaces": [NS]}}, "spec.selector"),
    ({"mode": "fixed"}, "spec.value"),
    ({"mode": "fixed-percent", "value": "150"}, "spec.value"),
    ({"delay": None}, "spec.delay"),
    ({"delay": {"latency": "120"}}, "spec.delay.latency"),
    ({"target": {"mode": "random-max-percent", "selector": {"labelSelectors": {"a": "b"}}}},
     "spec.target.value"),
    ({"jitter": "1ms"}, "jitter"),
    ({"action": "explode"}, "spec.action"),
])
def test_fake_rejects_what_chaos_mesh_rejects(fake: FakeKubernetes, change: dict[str, Any],
                                              complaint: str) -> None:
    """The fake answers 422 for schema and webhook violations, naming the field."""
    spec_ = {"action": "delay", "mode": "all", "duration": "30s",
             "selector": {"labelSelectors": {"app": "user-service"}},
             "delay": {"latency": "120ms"}}
    spec_ = {k: v for k, v in (spec_ | change).items() if v is not None}
    body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
            "metadata": {"name": "bad"}, "spec": spec_}
    with pytest.raises(ApiException) as caught:
        CustomObjectsApi(fake.api_client()).create_namespaced_custom_object(
            "chaos-mesh.org", "v1alpha1", NS, "networkchaos", body)
    assert caught.value.status == 422
    assert complaint in (caught.value.body or "")
    assert fake.chaos_objects() == []


@pytest.mark.parametrize(("kind", "plural", "spec_", "complaint"), [
    ("PodChaos", "podchaos", {"action": "container-kill"}, "containerNames"),
    ("PodChaos", "podchaos", {"action": "pod-failure"}, "duration"),
    ("HTTPChaos", "httpchaos", {"target": "Request", "delay": "1s"}, "spec.port"),
    ("HTTPChaos", "httpchaos", {"target": "Request", "port": 80}, "no action"),
    ("StressChaos", "stresschaos", {"stressors": {}}, "stressors"),
])
def test_fake_checks_the_fields_each_action_needs(fake: FakeKubernetes, kind: str, plural: str,
                                                  spec_: dict[str, Any], complaint: str) -> None:
    """Actions without the fields they need are refused like the webhook refuses them."""
    body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": kind, "metadata": {"name": "bad"},
            "spec": {"mode": "one", "selector": {"labelSelectors": {"app": "x"}}, **spec_}}
    with pytest.raises(ApiException) as caught:
        CustomObjectsApi(fake.api_client()).create_namespaced_custom_object(
            "chaos-mesh.org", "v1alpha1", NS, plural, body)
    assert caught.value.status == 422
    assert complaint in (caught.value.body or "")


def test_a_stuck_deletion_is_paused_and_reported(fake: FakeKubernetes) -> None:
    """Deletion stuck behind the finalizer → pause annotation, DriverError; finalizers stay."""
    driver = maker(fake, revert_timeout=0.5)()
    handle = driver.apply(spec(LatencyFault(ms=100)), ttl=30)
    fake.stick(handle.id)
    with pytest.raises(DriverError, match=r"Paused it with experiment\.chaos-mesh\.org/pause"):
        driver.revert(handle)
    [stuck] = fake.chaos_objects()
    assert stuck["metadata"]["annotations"][PAUSE_ANNOTATION] == "true"
    assert stuck["metadata"]["finalizers"] == [FINALIZER]
    assert "deletionTimestamp" in stuck["metadata"]
    assert [h.id for h in driver.active(run="r42")] == [handle.id]  # still visible
    fake.release(handle.id)
    driver.revert(handle)
    assert driver.active(run="r42") == []


def test_forbidden_namespaces_create_nothing(fake: FakeKubernetes) -> None:
    """A namespace outside the allow-list, or kube-system, is refused before any request."""
    for namespace in ("payments", "kube-system"):
        driver = maker(fake, namespace=namespace, allowed=(NS,))()
        with pytest.raises(DriverError, match=namespace):
            driver.apply(spec(LatencyFault(ms=100)), ttl=30)
    assert fake.writes == []


def test_bad_label_values_create_nothing(fake: FakeKubernetes) -> None:
    """A run id that is not a valid Kubernetes label value is refused before any request."""
    labels = Labels(run="r42-", scenario="s", environment="staging", step=1)
    with pytest.raises(DriverError, match="label run"):
        maker(fake)().apply(spec(LatencyFault(ms=100), labels=labels), ttl=30)
    assert fake.writes == []


def test_active_looks_in_every_allowed_namespace(fake: FakeKubernetes) -> None:
    """``active(run=…)`` finds the run's experiments in all allowed namespaces, only its own."""
    allowed = (NS, "payments")
    first = maker(fake, allowed=allowed)().apply(spec(PodKillFault(count=1), SERVICE), ttl=30)
    second = maker(fake, namespace="payments", allowed=allowed)().apply(
        spec(CpuFault(load_percent=50), SERVICE), ttl=30)
    other = Labels(run="r43", scenario="s", environment="staging", step=1)
    maker(fake)().apply(spec(MemoryFault(mb=64), SERVICE, other), ttl=30)
    found = maker(fake, allowed=allowed)().active(run="r42")
    assert sorted(h.id for h in found) == sorted([first.id, second.id])
    assert {h.endpoint for h in found} == {"chaos-testing/PodChaos", "payments/StressChaos"}
    assert len(maker(fake, allowed=allowed)().active()) == 3


def test_an_unreachable_api_is_driver_unreachable() -> None:
    """A Kubernetes API that does not answer raises DriverUnreachable."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = False
    driver = ChaosMeshDriver(NS, {"app": "x"}, api_client=client.ApiClient(configuration))
    with pytest.raises(DriverUnreachable):
        driver.check()


def test_nothing_connects_until_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a driver reads no kubeconfig; using it without credentials fails clearly."""
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    driver = ChaosMeshDriver(NS, {"app": "x"})
    with pytest.raises(DriverUnreachable, match="no Kubernetes credentials"):
        driver.active()


@pytest.mark.parametrize(("seconds", "text"), [(30, "30s"), (1.5, "1500ms"), (0.12, "120ms"),
                                               (0.0005, "500us"), (0, "0s")])
def test_go_durations(seconds: float, text: str) -> None:
    """Durations are written the way Go's time.ParseDuration reads them."""
    assert go_duration(seconds) == text


@pytest.mark.parametrize(("fault", "target", "message"), [
    (LatencyFault(ms=1, match=Match(methods=["GET", "POST"])), CALL, "one HTTP method"),
    (BlackholeFault(match=Match(path_prefix="/x")), CALL, "all traffic"),
    (LatencyFault(ms=1), SERVICE, "names no dependency"),
])
def test_faults_chaos_mesh_cannot_express_are_refused(fault: Any, target: Target,
                                                      message: str) -> None:
    """Faults that Chaos Mesh cannot express are refused with the reason, not approximated."""
    with pytest.raises(DriverError, match=message):
        experiment(fault, target, NS, {"app": "user-service"}, 30, ChaosOptions())


def test_an_empty_selector_is_refused() -> None:
    """An empty pod selector (every pod in the namespace) is refused."""
    with pytest.raises(DriverError, match="non-empty pod selector"):
        experiment(CpuFault(load_percent=10), SERVICE, NS, {}, 30)


def test_endpoints_get_the_kubernetes_drivers() -> None:
    """``driver_for`` builds the Kubernetes drivers from endpoints without connecting."""
    from gameday.drivers import Driver, driver_for
    from gameday.drivers.configmap import ConfigMapDriver
    from gameday.models import Endpoint

    chaos = driver_for(Endpoint(service="user-service", driver="chaos_mesh", namespace=NS,
                                selector={"app": "user-service"}))
    assert isinstance(chaos, ChaosMeshDriver) and isinstance(chaos, Driver)
    assert (chaos.namespace, chaos.allowed_namespaces) == (NS, (NS,))
    rules = driver_for(Endpoint(service="user-service", driver="configmap", namespace=NS,
                                configmap="gameday-fault-rules"))
    assert isinstance(rules, ConfigMapDriver) and rules.where == f"{NS}/gameday-fault-rules"


@pytest.mark.parametrize(("name", "value", "fault", "target", "complaint"), [
    ("_all", lambda: {"mode": "everything"}, CpuFault(load_percent=10), SERVICE,
     "spec.mode: 'everything' is not one of ['one', 'all'"),
    ("BANDWIDTH_LIMIT", "20MB", BandwidthFault(kbps=512), CALL,
     "spec.bandwidth.limit: '20MB' is not of type 'integer'"),
    ("go_duration", lambda seconds: f"{round(seconds * 1000)}", LatencyFault(ms=300), CALL,
     "spec.delay.latency: '300' does not match"),
], ids=["bad-mode", "wrong-type", "bad-duration"])
def test_an_object_chaos_mesh_would_refuse_is_never_sent(
        fake: FakeKubernetes, monkeypatch: pytest.MonkeyPatch, name: str, value: Any,
        fault: Any, target: Target, complaint: str) -> None:
    """A built object that fails the CRD schema raises ChaosSpecError; the API sees nothing."""
    monkeypatch.setattr(chaos_specs, name, value)  # a builder bug, or a CRD that changed
    with pytest.raises(ChaosSpecError, match=r"Chaos Mesh would refuse it: ") as caught:
        maker(fake)().apply(spec(fault, target), ttl=30)
    assert any(problem.startswith(complaint) for problem in caught.value.problems), \
        caught.value.problems
    assert fake.requests == []


def steps(*faults: Any, target: Target = CALL) -> list[tuple[FaultSpec, float]]:
    return [(spec(fault, target, LABELS.model_copy(update={"step": number})), 30.0)
            for number, fault in enumerate(faults, 1)]


def test_a_valid_plan_has_no_problems(fake: FakeKubernetes) -> None:
    """Every step the driver can build and Chaos Mesh accepts: no problems, no request."""
    plan = steps(LatencyFault(ms=50), LatencyFault(ms=120, match=Match(methods=["GET"])))
    assert check_plan(maker(fake)(), plan) == []
    refuse_invalid_plan(maker(fake)(), plan)
    assert fake.requests == []


def test_a_plan_names_each_refused_step_and_field(fake: FakeKubernetes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema problems and faults the driver cannot build are listed by step, offline."""
    monkeypatch.setattr(chaos_specs, "_all", lambda: {"mode": "everything"})
    plan = steps(LatencyFault(ms=50), LatencyFault(ms=50, match=Match(methods=["GET", "POST"])))
    found = check_plan(maker(fake)(), plan)
    assert [(p.step, p.kind, p.field) for p in found] == [(1, "NetworkChaos", "spec.mode"),
                                                          (2, None, "")]
    assert str(found[0]).startswith("step 1 (latency 50ms): NetworkChaos spec.mode: "
                                    "'everything' is not one of")
    assert "matches one HTTP method" in str(found[1])
    with pytest.raises(RefusedError, match=r"scenario 'auth-latency' in 'staging':\n  - step 1"):
        refuse_invalid_plan(maker(fake)(), plan)
    assert fake.requests == []


def test_other_drivers_plans_are_not_checked() -> None:
    """A driver that builds no Chaos Mesh objects has nothing to check."""
    from gameday.drivers.configmap import ConfigMapDriver

    driver = ConfigMapDriver(NS, "gameday-fault-rules")
    plan = steps(LatencyFault(ms=1, match=Match(methods=["GET", "PUT"])))
    assert check_plan(driver, plan) == []
