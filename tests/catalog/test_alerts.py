"""Matchers, expected alerts, the environment's Alertmanager and SLOs: what the catalog takes,
what it refuses, and what the refusal says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gameday.models import Environment, Scenario
from gameday.models.alerts import (
    AlertmanagerSettings,
    ExpectedAlert,
    Matcher,
    matches_all,
    parse_matchers,
    show,
)
from gameday.models.slo import SLO
from gameday.protocol.checks import Request, refusals
from gameday.protocol.silences import silence_matchers
from tests.catalog.cases import GOOD_SCENARIO, assert_bad_entry

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # a Friday, inside the default window
GOOD_SLO: dict[str, Any] = {
    "good": 'sum(increase(requests_total{code!~"5.."}[{range}]))',
    "total": "sum(increase(requests_total[{range}]))", "objective": 0.99, "window": "1h"}


def environment(**changes: Any) -> Environment:
    return Environment.model_validate({
        "name": "demo", "prometheus": {"url": "http://127.0.0.1:9"},
        "allowed_targets": ["user-service"],
        "endpoints": [{"service": "user-service", "dependency": "auth-service",
                       "driver": "proxy", "admin_url": "http://127.0.0.1:9"}]} | changes)


def scenario(**changes: Any) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(GOOD_SCENARIO) | changes)


# --- matchers -------------------------------------------------------------------------------


def test_matchers_read_as_alertmanager_writes_them() -> None:
    found = parse_matchers('{severity=~"page|critical", team!="db", env="a\\"b"}')
    assert [(m.name, m.op, m.value) for m in found] == [
        ("severity", "=~", "page|critical"), ("team", "!=", "db"), ("env", "=", 'a"b')]
    assert show(found) == '{severity=~"page|critical", team!="db", env="a\\"b"}'
    assert parse_matchers('severity="page"') == parse_matchers('{severity="page"}')


@pytest.mark.parametrize(("labels", "hit"), [
    ({"severity": "page"}, True),
    ({"severity": "critical", "team": "web"}, True),
    ({"severity": "pager"}, False),  # a regex matches the whole value, as in Alertmanager
    ({"severity": "page", "team": "db"}, False),
    ({}, False),
])
def test_matchers_match_as_alertmanager_does(labels: dict[str, str], hit: bool) -> None:
    assert matches_all(parse_matchers('{severity=~"page|critical", team!="db"}'), labels) is hit


def test_a_missing_label_is_the_empty_string() -> None:
    assert Matcher(name="team", op="=", value="").matches({})
    assert not Matcher(name="team", op="!=", value="").matches({})


@pytest.mark.parametrize(("text", "words"), [
    ('{severity=~"page"', "open a brace"),
    ("{severity=page}", "cannot read matchers"),
    ('{severity=~"("}', "not a regular expression"),
    ('{severity=>"page"}', "ops: = != =~ !~"),
])
def test_bad_matchers_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_matchers(text)


def test_the_default_incident_matchers_are_pages_and_criticals() -> None:
    settings = AlertmanagerSettings(url="http://127.0.0.1:9093")
    assert show(settings.incident_matchers) == '{severity=~"page|critical"}'
    assert settings.silence_lease == 300


@pytest.mark.parametrize("lease", ["1s", "6m"])
def test_a_silence_lease_is_short(lease: str) -> None:
    with pytest.raises(ValidationError, match="between 5s and 5m"):
        AlertmanagerSettings(url="http://127.0.0.1:9093", silence_lease=lease)


# --- silences -------------------------------------------------------------------------------


def test_one_silence_names_every_expected_alert_the_environment_and_the_safety_matcher() -> None:
    settings = AlertmanagerSettings(url="http://x:1", labels={"environment": "demo"})
    expected = [ExpectedAlert(alertname="B.Slow"), ExpectedAlert(alertname="AHigh")]
    (matchers,) = silence_matchers(settings, expected)
    assert show(matchers) == ('{alertname=~"AHigh|B\\\\.Slow", environment="demo", '
                              'gameday_safety!="true"}')
    silenced = {"alertname": "B.Slow", "environment": "demo"}
    assert matches_all(matchers, silenced)
    assert not matches_all(matchers, {"alertname": "BxSlow", "environment": "demo"})
    assert not matches_all(matchers, silenced | {"gameday_safety": "true"})
    assert not matches_all(matchers, silenced | {"environment": "prod"})


def test_alerts_with_other_matchers_get_a_silence_of_their_own() -> None:
    settings = AlertmanagerSettings(url="http://x:1")
    expected = [ExpectedAlert(alertname="A", matchers='{service="users"}'),
                ExpectedAlert(alertname="B"), ExpectedAlert(alertname="C")]
    shown = sorted(show(m) for m in silence_matchers(settings, expected))
    assert shown == ['{alertname="A", service="users", gameday_safety!="true"}',
                     '{alertname=~"B|C", gameday_safety!="true"}']


@pytest.mark.parametrize("label", ["gameday_safety", "alertname"])
def test_an_expected_alert_may_not_match_the_safety_label(label: str) -> None:
    with pytest.raises(ValidationError, match="may not be matched here"):
        ExpectedAlert(alertname="A", matchers=f'{{{label}="x"}}')


def test_expecting_alerts_without_an_alertmanager_is_refused() -> None:
    s = scenario(expected_alerts=[{"alertname": "AuthDown"}])
    reasons = refusals(Request(s, environment(), "alice"), NOW)
    assert any("expects alerts (AuthDown)" in r and "no alertmanager" in r for r in reasons)
    ok = environment(alertmanager={"url": "http://127.0.0.1:9093"})
    assert not refusals(Request(s, ok, "alice"), NOW)


# --- SLOs -----------------------------------------------------------------------------------


def test_the_budget_queries_fill_the_range() -> None:
    slo = SLO.model_validate(GOOD_SLO | {"burn_window": "5m", "max_burn_rate": 10})
    assert slo.budget_left_query() == (
        '1 - (1 - (sum(increase(requests_total{code!~"5.."}[3600s]))) / '
        "(sum(increase(requests_total[3600s])))) / 0.01")
    assert "[300s]" in str(slo.burn_rate_query()) and slo.min_budget_left == 0.25


@pytest.mark.parametrize(("changes", "words"), [
    ({"good": "sum(requests_total)"}, "{range} placeholder"),
    ({"objective": 1}, "less than 1"),
    ({"burn_window": "5m"}, "go together"),
    ({"min_budget_left": 1.5}, "less than 1"),
])
def test_bad_slos_are_refused(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        SLO.model_validate(GOOD_SLO | changes)


def test_the_scenarios_slo_replaces_the_environments() -> None:
    env = environment(slo=GOOD_SLO)
    own = GOOD_SLO | {"objective": 0.999}
    assert Request(scenario(), env, "a").slo == env.slo
    assert Request(scenario(slo=own), env, "a").slo.objective == 0.999  # type: ignore[union-attr]


def test_the_kits_guard_names_are_reserved() -> None:
    with pytest.raises(ValidationError, match="a guard the kit adds itself"):
        scenario(guards={"incident": "> 0"})


@pytest.mark.parametrize(("entry", "line", "field", "words"), [
    # GOOD_SCENARIO has twelve lines; the entry starts on line 13.
    ("expected_alerts:\n  - alertname: A\n    matchers: '{a=b}'\n", 15,
     "expected_alerts[0].matchers", "cannot read matchers"),
    ("slo:\n  good: x\n  total: y[{range}]\n  objective: 0.9\n  window: 1h\n", 14,
     "slo.good", "{range} placeholder"),
])
def test_a_bad_entry_names_file_line_and_field(
    entry: str, line: int, field: str, words: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """chaosctl catalog validate exits 2 with file:line, the scenario and the field."""
    assert_bad_entry(entry, line, field, words, tmp_path, capsys)
