"""A step may switch the fault's kind (a cache blackholed, then reset): what it builds, refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gameday.cli import main
from gameday.faults import BlackholeFault, ResetFault
from gameday.models import Scenario
from tests.catalog.test_protocols import ENVIRONMENT
from tests.catalog.test_validate_cli import REPO, write


def outage(*steps: dict[str, Any], fault: dict[str, Any] | None = None) -> Scenario:
    return Scenario.model_validate({
        "name": "cache-outage", "description": "x", "owner": "team-a",
        "target": {"service": "user-service", "dependency": "redis"},
        "environments": ["demo"],
        "fault": fault or {"kind": "blackhole", "direction": "both"},
        "steps": list(steps), "guards": {"error_rate_percent": "> 5 for 2s"}})


def test_a_step_switches_kind_and_keeps_where_the_fault_acts() -> None:
    """Step 2's fault is a reset, with the blackhole's direction; its own fields set it."""
    scenario = outage({"dwell": "10s"}, {"kind": "reset", "probability": 0.5, "dwell": "10s"})
    first, second = scenario.step_faults()
    assert isinstance(first, BlackholeFault) and first.direction == "both"
    assert isinstance(second, ResetFault)
    assert second.probability == 0.5 and second.direction == "both"


def test_severity_restarts_with_a_new_kind() -> None:
    """A lower probability after a switch is a new failure mode, not a milder step; within a
    kind the ladder must still climb."""
    outage({"probability": 1.0, "dwell": "5s"}, {"kind": "reset", "probability": 0.2,
                                                  "dwell": "5s"})
    with pytest.raises(ValidationError, match="lower than step 2's"):
        outage({"dwell": "5s"}, {"kind": "reset", "probability": 0.5, "dwell": "5s"},
               {"kind": "reset", "probability": 0.2, "dwell": "5s"})


@pytest.mark.parametrize("step, says", [
    ({"kind": "teleport", "dwell": "5s"}, "unknown fault kind 'teleport'"),
    ({"kind": "reset", "ms": 5, "dwell": "5s"}, "does not apply to fault kind 'reset'"),
    ({"kind": "cpu", "dwell": "5s"}, "a step may switch only between kinds that act on calls"),
])
def test_a_bad_switch_is_refused_with_the_step_and_field(step: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says) as caught:
        outage({"dwell": "5s"}, step)
    assert caught.value.errors()[0]["ctx"]["path"][:2] == ("steps", 1)


def test_validate_refuses_a_step_kind_the_endpoint_cannot_inject(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A step that switches to an HTTP-only kind on a TCP endpoint fails `catalog validate`."""
    root = write(tmp_path, {"environments/demo.yaml": ENVIRONMENT, "scenarios/s.yaml": """\
name: db-down
description: x
owner: team-a
target: {service: user-service, dependency: postgres}
environments: [demo]
fault: {kind: latency, ms: 5}
steps:
  - {dwell: 10s}
  - {kind: abort, status: 503, dwell: 10s}
guards:
  error_rate_percent: "> 5 for 2s"
"""})
    code = main(["catalog", "--catalog", str(REPO / "catalog"), "validate", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    assert "s.yaml:6:" in err and "abort" in err and "allowed: latency, reset" in err, err
