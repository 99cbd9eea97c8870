"""Prepare's refusals that need no server: each names its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from gameday.models import Environment, Mission, Scenario
from gameday.protocol.checks import Request, refusals, severities
from tests.catalog.cases import GOOD_SCENARIO

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday


def scenario(**changes: Any) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(GOOD_SCENARIO) | changes)


def environment(**changes: Any) -> Environment:
    data = {"name": "demo", "prometheus": {"url": "http://127.0.0.1:9"},
            "allowed_targets": ["user-service"],
            "endpoints": [{"service": "user-service", "dependency": "auth-service",
                           "driver": "proxy", "admin_url": "http://127.0.0.1:9"}]}
    return Environment.model_validate(data | changes)


def mission(**changes: Any) -> Mission:
    return Mission.model_validate({"scenario": "good-one", "environment": "demo",
                                   "requester": "alice"} | changes)


def test_a_valid_request_has_no_refusal() -> None:
    """A request inside every rule may start."""
    assert refusals(Request(scenario(), environment(), "alice"), NOW) == []


@pytest.mark.parametrize(("request_", "reason"), [
    (Request(scenario(), environment(enabled=False), "alice"), "kill switch"),
    (Request(scenario(), environment(production=True), "alice"), "--allow-production"),
    (Request(scenario(), environment(allowed_targets=["other"]), "alice"), "allowed_targets"),
    (Request(scenario(), environment(requesters=["bob"]), "alice"), "requester 'alice'"),
    (Request(scenario(trigger={"window": {"days": ["mon"]}}), environment(), "alice"),
     "outside the trigger window"),
    (Request(scenario(), environment(), "alice", mission=mission(enable=False)),
     "mission is disabled"),
    (Request(scenario(), environment(endpoints=[]), "alice"), "no endpoint"),
    (Request(scenario(environments=["staging"]), environment(), "alice"), "may not run in"),
    (Request(scenario(), environment(), "alice", max_severity=9), "outside the ladder"),
], ids=["kill-switch", "production", "allow-list", "requester", "window", "mission",
        "endpoint", "scenario-environments", "max-severity"])
def test_each_refusal_names_its_reason(request_: Request, reason: str) -> None:
    """Each rule that forbids a start gives its own reason."""
    found = refusals(request_, NOW)
    assert any(reason in r for r in found), found


def test_production_runs_when_explicitly_allowed() -> None:
    """A production environment accepts a run that says so explicitly."""
    request = Request(scenario(), environment(production=True), "alice", allow_production=True)
    assert refusals(request, NOW) == []


def test_every_reason_is_given_at_once() -> None:
    """Several broken rules are reported together."""
    request = Request(scenario(), environment(enabled=False, requesters=["bob"]), "alice")
    assert len(refusals(request, NOW)) == 2


def test_severities_stop_at_max_severity_and_duration() -> None:
    """The ladder is cut by max severity and by the duration cap."""
    assert severities(Request(scenario(), environment(), "a")) == [1, 2]
    assert severities(Request(scenario(), environment(), "a", max_severity=1)) == [1]
    assert severities(Request(scenario(), environment(), "a", duration=15)) == [1]
