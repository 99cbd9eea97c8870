"""Refusals that need no I/O: whether a game day may start at all (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from gameday.models import Environment, Mission, Scenario, Search
from gameday.models.slo import SLO


@dataclass(frozen=True)
class Request:
    """What someone asked for."""

    scenario: Scenario
    environment: Environment
    requester: str | None
    max_severity: int | None = None
    duration: float | None = None
    allow_production: bool = False
    mission: Mission | None = None
    #: Search for the breaking point after a guard breach, even if the scenario asks for none.
    find_breaking_point: bool = False

    @property
    def search(self) -> Search | None:
        """The search this run does after a breach: the scenario's, or the defaults when asked
        for one it has not got."""
        if self.scenario.search is not None:
            return self.scenario.search
        return Search() if self.find_breaking_point else None

    @property
    def slo(self) -> SLO | None:
        """The error budget this run keeps: the scenario's SLO, else the environment's."""
        return self.scenario.slo or self.environment.slo


def refusals(request: Request, now: datetime) -> list[str]:
    """Every reason to refuse ``request`` at ``now`` (timezone-aware); empty means go."""
    scenario, env = request.scenario, request.environment
    reasons = []
    if not env.enabled:
        reasons.append(f"environment {env.name!r} is disabled (kill switch: enabled: false)")
    if env.production and not request.allow_production:
        reasons.append(f"environment {env.name!r} is production: pass --allow-production "
                       "(allow_production=True) to run there")
    if env.name not in scenario.environments:
        reasons.append(f"scenario {scenario.name!r} may not run in {env.name!r} "
                       f"(allowed: {', '.join(scenario.environments)})")
    if scenario.target.service not in env.allowed_targets:
        allowed = ", ".join(env.allowed_targets) or "none"
        reasons.append(f"target {scenario.target.service!r} is not in {env.name!r}'s "
                       f"allowed_targets ({allowed})")
    endpoint = env.endpoint_for(scenario.target)
    if endpoint is None:
        reasons.append(f"environment {env.name!r} has no endpoint for "
                       f"{_target(request)}: add one under endpoints")
    else:
        for name, message in scenario.protocol_problems(scenario.target.protocol
                                                               or endpoint.protocol):
            reasons.append(f"fault.{name}: {message} (the endpoint for {_target(request)} in "
                           f"{env.name!r})")
    if env.requesters and request.requester not in env.requesters:
        reasons.append(f"requester {request.requester or '(none)'!r} is not allowed in "
                       f"{env.name!r} (allowed: {', '.join(env.requesters)})")
    if not scenario.trigger.window.contains(now):
        window = scenario.trigger.window
        reasons.append(f"outside the trigger window ({','.join(window.days)} {window.hours} "
                       f"{window.timezone})")
    if request.mission is not None and not request.mission.enable:
        reasons.append("the mission is disabled (enable: false)")
    if scenario.expected_alerts and env.alertmanager is None:
        names = ", ".join(a.alertname for a in scenario.expected_alerts)
        reasons.append(f"scenario {scenario.name!r} expects alerts ({names}) and environment "
                       f"{env.name!r} names no alertmanager to silence them: on-call would be "
                       "paged for them; add alertmanager: {url: …} to the environment")
    if request.max_severity is not None and not 1 <= request.max_severity <= scenario.max_severity:
        reasons.append(f"max severity {request.max_severity} is outside the ladder "
                       f"(allowed: 1..{scenario.max_severity})")
    if request.find_breaking_point and scenario.search is None:
        try:
            scenario.search_field(Search())
        except (ValueError, ValidationError) as exc:
            reasons.append(f"cannot search for a breaking point: {exc} (add a search: entry "
                           "with its field to the scenario)")
    if request.duration is not None and request.duration > scenario.max_duration:
        reasons.append(f"duration {request.duration:g}s exceeds the scenario's max_duration "
                       f"{scenario.max_duration:g}s")
    return reasons


def _target(request: Request) -> str:
    target = request.scenario.target
    return f"{target.service}→{target.dependency}" if target.dependency else target.service


def severities(request: Request) -> list[int]:
    """The steps this run will climb: up to max severity and within the duration cap."""
    scenario = request.scenario
    top = request.max_severity or scenario.max_severity
    budget = request.duration if request.duration is not None else scenario.max_duration
    chosen, spent = [], 0.0
    for severity in range(1, top + 1):
        spent += scenario.steps[severity - 1].dwell
        if spent > budget:
            break
        chosen.append(severity)
    return chosen

