"""The catalog knows which endpoints speak TCP: a fault must suit its endpoint's protocol.

``catalog validate`` refuses an HTTP-only kind on a TCP endpoint and a TCP-only kind (or a TCP
field) on an HTTP endpoint, at the fault's file:line, naming the kinds the endpoint accepts;
the run's prepare phase refuses the same before it injects anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from gameday.cli import main
from gameday.load import load_catalog
from gameday.models import Endpoint
from gameday.protocol.checks import Request, refusals
from tests.catalog.test_validate_cli import REPO, write

ENVIRONMENT = """\
name: demo
prometheus: {url: "http://127.0.0.1:9090"}
allowed_targets: [user-service]
endpoints:
  - service: user-service
    dependency: auth-service
    driver: proxy
    admin_url: http://127.0.0.1:18101
  - service: user-service
    dependency: postgres
    driver: proxy
    protocol: tcp
    admin_url: http://127.0.0.1:18103
"""


def scenario(name: str, dependency: str, fault: str) -> str:
    """A scenario whose ``fault:`` is on line 6."""
    return f"""\
name: {name}
description: x
owner: team-a
target: {{service: user-service, dependency: {dependency}}}
environments: [demo]
{fault}
steps: [{{dwell: 10s}}]
guards:
  error_rate_percent: "> 5 for 2s"
"""


CASES = [
    ("abort-on-tcp", "postgres", "fault: {kind: abort, status: 503}", 6, "fault.kind",
     "allowed: latency, reset, blackhole, bandwidth, timeout, slicer, limit_data"),
    ("limit-on-http", "auth-service", "fault: {kind: limit_data, bytes: 10}", 6, "fault.kind",
     "allowed: latency, abort, reset, blackhole, bandwidth"),
    ("direction-on-http", "auth-service",
     "fault:\n  kind: latency\n  ms: 5\n  direction: upstream", 9, "fault.direction",
     "applies to TCP endpoints only"),
    ("match-on-tcp", "postgres",
     "fault:\n  kind: latency\n  ms: 5\n  match: {methods: [GET]}", 9, "fault.match",
     "no requests to match"),
]


@pytest.mark.parametrize("name, dependency, fault, line, field, says", CASES,
                         ids=[case[0] for case in CASES])
def test_validate_refuses_a_fault_the_endpoint_cannot_inject(
        name: str, dependency: str, fault: str, line: int, field: str, says: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2, the problem at the fault's line, naming the endpoint and what it accepts."""
    root = write(tmp_path, {"environments/demo.yaml": ENVIRONMENT,
                            "scenarios/s.yaml": scenario(name, dependency, fault)})
    code = main(["catalog", "--catalog", str(REPO / "catalog"), "validate", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    [problem] = [p for p in err.splitlines() if f"s.yaml:{line}:" in p]
    assert f" {field}: " in problem and says in problem, err
    assert f"endpoint user-service/{dependency} at" in problem and "demo.yaml:" in problem


def test_faults_that_fit_their_endpoints_validate(tmp_path: Path) -> None:
    """TCP kinds on the TCP endpoint and HTTP kinds on the HTTP one are fine."""
    root = write(tmp_path, {
        "environments/demo.yaml": ENVIRONMENT,
        "scenarios/a.yaml": scenario("db-slices", "postgres",
                                     "fault: {kind: slicer, size_bytes: 8, delay_ms: 1}"),
        "scenarios/b.yaml": scenario("db-slow", "postgres",
                                     "fault: {kind: latency, ms: 5, direction: both}"),
        "scenarios/c.yaml": scenario("auth-abort", "auth-service", "fault: {kind: abort}"),
    })
    catalog = load_catalog([root], REPO / "catalog" / "signals.yaml", runbooks=False)
    assert set(catalog.scenarios) == {"db-slices", "db-slow", "auth-abort"}


def test_tcp_needs_the_proxy_driver() -> None:
    """protocol tcp on a transport endpoint is refused: only the proxy speaks TCP."""
    with pytest.raises(ValidationError, match="protocol 'tcp' needs driver 'proxy'"):
        Endpoint.model_validate({"service": "a", "dependency": "b", "driver": "transport",
                                 "rules_file": "/tmp/r.json", "protocol": "tcp"})


def test_prepare_refuses_the_same_mismatch(tmp_path: Path) -> None:
    """An environment from a block (never validated with the catalog) is refused at prepare."""
    root = write(tmp_path, {"environments/demo.yaml": ENVIRONMENT,
                            "scenarios/s.yaml": scenario("db-abort", "auth-service",
                                                         "fault: {kind: abort}")})
    catalog = load_catalog([root], REPO / "catalog" / "signals.yaml", runbooks=False)
    environment = catalog.environments["demo"]
    moved = environment.model_copy(update={"endpoints": [
        environment.endpoints[1].model_copy(update={"dependency": "auth-service"})]})
    reasons = refusals(Request(catalog.scenarios["db-abort"], moved, None),
                       datetime.now(UTC))
    assert any(reason.startswith("fault.kind: 'abort' is injected on http endpoints only")
               for reason in reasons), reasons
