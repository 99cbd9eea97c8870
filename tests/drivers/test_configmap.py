"""The ConfigMap driver: transport rules with expiry in a ConfigMap, against the fake API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gameday.drivers.configmap import ConfigMapDriver
from gameday.errors import DriverError
from gameday.faults import AbortFault, CpuFault, LatencyFault
from gameday.injector.rules import Rule
from gameday.models import Target
from gameday.records import FaultSpec, Labels
from tests.contract import check_driver_contract
from tests.fakes.k8s_api import FakeKubernetes

NS = "chaos-testing"
NAME = "gameday-fault-rules"
CALL = Target(service="user-service", dependency="auth-service")


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        fake.add_namespace(NS, {"chaos.gameday.io/enabled": "true"})
        fake.add_configmap(NS, NAME, {"rules.json": '{"rules": []}'})
        yield fake


def maker(fake: FakeKubernetes, namespace: str = NS) -> Callable[[], ConfigMapDriver]:
    return lambda: ConfigMapDriver(namespace, NAME, [NS], api_client=fake.api_client())


def spec(fault: Any, run: str = "r42", step: int = 1) -> FaultSpec:
    return FaultSpec(fault=fault, target=CALL,
                     labels=Labels(run=run, scenario="auth-aborts", environment="staging",
                                   step=step))


def stored(fake: FakeKubernetes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fake.configmaps[(NS, NAME)]["data"]["rules.json"])
    return document


@pytest.mark.parametrize("fault", [LatencyFault(ms=120, jitter_ms=5), AbortFault(status=503)],
                         ids=["latency", "abort"])
def test_contract(fake: FakeKubernetes, fault: Any) -> None:
    """apply → found by a fresh driver → revert twice → nothing active; the map ends empty."""
    check_driver_contract(maker(fake), spec(fault), ttl=30)
    assert stored(fake) == {"rules": []}


def test_rules_are_the_transport_format(fake: FakeKubernetes) -> None:
    """Stored rules are transport ``Rule`` objects with target and absolute expiry."""
    before = time.time()
    handle = maker(fake)().apply(spec(AbortFault(status=502, probability=0.1)), ttl=40)
    [rule] = [Rule.model_validate(item) for item in stored(fake)["rules"]]
    assert rule.id == handle.id
    assert rule.target == "user-service/auth-service"
    assert rule.labels.run == "r42"
    assert before + 40 <= rule.expires_at == handle.expires_at <= time.time() + 40
    assert rule.fault == AbortFault(status=502, probability=0.1)


def test_revert_removes_only_its_rule(fake: FakeKubernetes) -> None:
    """Reverting one rule keeps the others."""
    driver = maker(fake)()
    first = driver.apply(spec(LatencyFault(ms=50), step=1), ttl=30)
    second = driver.apply(spec(LatencyFault(ms=100), step=2), ttl=30)
    driver.revert(first)
    assert [r["id"] for r in stored(fake)["rules"]] == [second.id]
    assert [h.id for h in driver.active(run="r42")] == [second.id]


def test_expired_rules_are_not_active_and_get_pruned(fake: FakeKubernetes) -> None:
    """A rule past its expiry is not listed, and the next write drops it."""
    driver = maker(fake)()
    old = driver.apply(spec(LatencyFault(ms=50), run="r41"), ttl=0.05)
    time.sleep(0.1)
    assert driver.active() == []
    new = driver.apply(spec(LatencyFault(ms=50)), ttl=30)
    assert [r["id"] for r in stored(fake)["rules"]] == [new.id]
    assert old.id != new.id


def test_concurrent_writers_lose_nothing(fake: FakeKubernetes) -> None:
    """Writes are conditional on resourceVersion, so concurrent applies all land."""
    errors: list[BaseException] = []

    def apply_some(run: str) -> None:
        try:
            driver = maker(fake)()
            for step in range(4):
                driver.apply(spec(LatencyFault(ms=10), run=run, step=step), ttl=30)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=apply_some, args=(f"r{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(stored(fake)["rules"]) == 8


def test_non_http_faults_are_refused(fake: FakeKubernetes) -> None:
    """CPU pressure is not a transport rule: refused before any write."""
    with pytest.raises(DriverError, match="HTTP faults"):
        maker(fake)().apply(FaultSpec(fault=CpuFault(load_percent=10),
                                      target=Target(service="user-service"),
                                      labels=Labels(run="r", scenario="s", environment="e",
                                                    step=1)), ttl=30)
    assert fake.writes == []


def test_a_missing_configmap_is_reported(fake: FakeKubernetes) -> None:
    """Without the ConfigMap, check and apply say which one to create."""
    del fake.configmaps[(NS, NAME)]
    with pytest.raises(DriverError, match="does not exist"):
        maker(fake)().check()
    with pytest.raises(DriverError, match="does not exist"):
        maker(fake)().apply(spec(LatencyFault(ms=1)), ttl=30)


def test_a_forbidden_namespace_creates_nothing(fake: FakeKubernetes) -> None:
    """A ConfigMap outside the allowed namespaces is never touched."""
    fake.add_namespace("payments")
    fake.add_configmap("payments", NAME, {})
    with pytest.raises(DriverError, match="payments"):
        maker(fake, namespace="payments")().apply(spec(LatencyFault(ms=1)), ttl=30)
    assert fake.writes == []


def test_a_damaged_document_is_an_error(fake: FakeKubernetes) -> None:
    """A rules key that is not a rules document is reported, not overwritten."""
    fake.configmaps[(NS, NAME)]["data"]["rules.json"] = "{not json"
    with pytest.raises(DriverError, match="not a rules document"):
        maker(fake)().apply(spec(LatencyFault(ms=1)), ttl=30)
    assert fake.writes == []
