"""Targets at a fault point: the catalog, prepare and the transport driver.

A target with ``point`` is faulted inside the service, through the rules file of a transport
endpoint that lists the point; beside a proxy for the same dependency, a target without one
still goes to the proxy. The catalog refuses a point no endpoint lists (naming those it
does), kinds a point cannot inject, and ``match`` on a point; the driver writes rules with
``points``, which the httpx transport and the proxy leave alone.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gameday.cli import main
from gameday.drivers.transport import TransportDriver
from gameday.errors import DriverError, RuleProblem
from gameday.faults import AbortFault, ErrorFault, LatencyFault
from gameday.injector.rules import HTTP_RULES, Rule, RuleInput
from gameday.injector.transport import FaultTransport, load_rules_file
from gameday.load import load_catalog
from gameday.models import Endpoint, Target
from gameday.protocol.checks import Request, refusals
from gameday.records import FaultSpec, Labels
from tests.catalog.test_validate_cli import REPO, write

ENVIRONMENT = """\
name: demo
prometheus: {url: "http://127.0.0.1:9090"}
allowed_targets: [user-service]
endpoints:
  - service: user-service
    dependency: redis
    driver: proxy
    protocol: tcp
    admin_url: http://127.0.0.1:18102
  - service: user-service
    dependency: redis
    driver: transport
    rules_file: /tmp/user-service-faults.json
    points: [redis, "redis.pipeline*"]
"""

LABELS = Labels(run="r1", scenario="s", environment="demo", step=1)


def scenario(name: str, target: str, fault: str) -> str:
    """A scenario whose ``target:`` is on line 4 and ``fault:`` on line 6."""
    return f"""\
name: {name}
description: x
owner: team-a
target: {target}
environments: [demo]
{fault}
steps: [{{dwell: 10s}}]
guards:
  error_rate_percent: "> 5 for 2s"
"""


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    root = write(tmp_path, {"environments/demo.yaml": ENVIRONMENT, "scenarios/s.yaml": text})
    code = main(["catalog", "--catalog", str(REPO / "catalog"), "validate", str(root)])
    return code, capsys.readouterr().err


def test_a_point_target_goes_to_the_transport_and_a_plain_one_to_the_proxy(
        tmp_path: Path) -> None:
    root = write(tmp_path, {"environments/demo.yaml": ENVIRONMENT, "scenarios/s.yaml": scenario(
        "in-process", "{service: user-service, dependency: redis, point: redis}",
        "fault: {kind: error, error: connection, probability: 0.3}")})
    catalog = load_catalog([root], REPO / "catalog" / "signals.yaml", runbooks=False)
    environment = catalog.environments["demo"]
    assert environment.endpoint_for(Target(service="user-service", dependency="redis",
                                           point="redis")).driver == "transport"
    # A prefix pattern covers the names it begins.
    assert environment.endpoint_for(Target(service="user-service", dependency="redis",
                                           point="redis.pipeline.exec")).driver == "transport"
    assert environment.endpoint_for(Target(service="user-service",
                                           dependency="redis")).driver == "proxy"
    assert environment.endpoint_for(Target(service="user-service", dependency="redis",
                                           point="postgres")) is None
    request = Request(catalog.scenarios["in-process"], environment, None)
    assert refusals(request, datetime.now(UTC)) == []


def test_a_point_no_endpoint_lists_is_refused_with_those_it_lists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(tmp_path, capsys, scenario(
        "typo", "{service: user-service, dependency: redis, point: rediss}",
        "fault: {kind: error}"))
    assert code == 2
    [problem] = [line for line in err.splitlines() if "s.yaml:4:" in line]
    assert "scenario 'typo'" in problem and "target.point" in problem, err
    assert "no fault point 'rediss'" in problem and "allowed: redis, redis.pipeline*" in problem
    assert "Traceback" not in err


@pytest.mark.parametrize("fault, field, says", [
    ("fault: {kind: abort, status: 503}", "fault.kind",
     "'abort' is injected on http endpoints only; this target is a fault point (allowed: "
     "latency, error)"),
    ("fault:\n  kind: latency\n  ms: 5\n  match: {methods: [GET]}", "fault.match",
     "a fault point has no requests to match"),
], ids=["abort", "match"])
def test_a_point_takes_latency_and_errors_only(
        fault: str, field: str, says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(tmp_path, capsys, scenario(
        "bad", "{service: user-service, dependency: redis, point: redis}", fault))
    assert code == 2
    [problem] = [line for line in err.splitlines() if f" {field}: " in line]
    assert says in problem, err


def test_an_error_fault_needs_a_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    """On the TCP proxy an error fault is refused, naming what the proxy takes."""
    code, err = validate(tmp_path, capsys, scenario(
        "no-point", "{service: user-service, dependency: redis}", "fault: {kind: error}"))
    assert code == 2
    [problem] = [line for line in err.splitlines() if "s.yaml:6:" in line]
    assert "'error' is injected on fault points (a target with a point) only; this endpoint " \
           "speaks tcp (allowed: latency, reset" in problem, err


def test_points_need_the_transport_driver_and_valid_names() -> None:
    with pytest.raises(ValidationError, match="points need driver 'transport'"):
        Endpoint.model_validate({"service": "a", "dependency": "b", "driver": "proxy",
                                 "admin_url": "http://127.0.0.1:1", "points": ["redis"]})
    with pytest.raises(ValidationError, match="point"):
        Target.model_validate({"service": "a", "point": "has space"})
    with pytest.raises(ValidationError, match="error"):
        ErrorFault.model_validate({"error": "no spaces allowed"})


def test_the_driver_writes_point_rules_and_refuses_http_kinds_there(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    driver = TransportDriver(path)
    target = Target(service="user-service", dependency="redis", point="redis")
    handle = driver.apply(FaultSpec(fault=ErrorFault(probability=0.3), target=target,
                                    labels=LABELS), ttl=30, lease=5)
    [rule] = load_rules_file(path)
    assert rule.points == ("redis",) and rule.fault == ErrorFault(probability=0.3)
    assert rule.target == "user-service/redis" and handle.extra["points"] == "redis"
    assert json.loads(path.read_text())["rules"][0]["points"] == ["redis"]
    with pytest.raises(DriverError, match=r"at fault point 'redis' \(latency, error\), not "
                                          r"'abort'"):
        driver.apply(FaultSpec(fault=AbortFault(), target=target, labels=LABELS), ttl=30)
    with pytest.raises(DriverError, match=r"HTTP faults \(.*\), not 'error'"):
        driver.apply(FaultSpec(fault=ErrorFault(), target=Target(service="user-service",
                                                                 dependency="redis"),
                               labels=LABELS), ttl=30)
    driver.revert(handle)
    assert driver.active() == []


def test_point_rules_never_act_on_http_calls() -> None:
    """A latency rule for a point leaves the service's httpx calls alone."""
    rule = Rule(id="p1", fault=LatencyFault(ms=5000), labels=LABELS,
                expires_at=time.time() + 60, points=("redis",))
    transport = FaultTransport(httpx.MockTransport(lambda request: httpx.Response(204)),
                               rules=[rule])
    started = time.monotonic()
    with httpx.Client(transport=transport) as client:
        assert client.get("http://svc/").status_code == 204
    assert time.monotonic() - started < 4.0


def test_a_proxy_refuses_point_rules_and_an_error_needs_points() -> None:
    item = RuleInput.model_validate({"fault": {"kind": "latency", "ms": 5}, "ttl": 30,
                                     "labels": LABELS.model_dump(), "points": ["redis"]})
    with pytest.raises(RuleProblem, match="not in a proxy"):
        HTTP_RULES.build(item, time.time())
    with pytest.raises(ValidationError, match="acts at fault points only"):
        RuleInput.model_validate({"fault": {"kind": "error"}, "ttl": 30,
                                  "labels": LABELS.model_dump()})
    with pytest.raises(ValidationError, match="takes latency or error faults, not 'abort'"):
        Rule(id="p2", fault=AbortFault(), labels=LABELS, expires_at=time.time() + 60,
             points=("redis",))
