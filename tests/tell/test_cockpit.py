"""The Grafana cockpit: valid against Grafana's dashboard schema, and wired to one datasource."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.tell.cockpit import dashboard, fill, queries

SCHEMA = Path(__file__).with_name("grafana_dashboard.schema.json")


def test_cockpit_is_valid_against_grafanas_schema() -> None:
    """Every key and type matches the dashboard kind of @grafana/schema (unknown keys fail)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(dashboard())]
    assert problems == []


def test_schema_catches_a_broken_dashboard() -> None:
    """The schema is strict enough to reject a typo'd key and a wrongly typed field."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = dashboard()
    broken["panels"][0]["gridpos"] = broken["panels"][0].pop("gridPos")
    broken["refresh"] = 5
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) == 2


def test_panels_use_the_datasource_variable_and_a_tidy_grid() -> None:
    """Every panel and target reads ``${datasource}``; ids are unique; panels do not overlap."""
    data = dashboard()
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert data["schemaVersion"] >= 39 and data["uid"] and data["title"]
    panels = data["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip()
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_cockpit_covers_what_on_call_needs() -> None:
    """Scenario and step, latency and error deltas, injection rate, guards, rollback, orphans."""
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for wanted in ("scenario and step", "latency", "error rate", "faults injected",
                   "guard state", "rollback status", "orphan"):
        assert wanted in titles, wanted
    exprs = " ".join(expr for _, expr in queries())
    for metric in ("chaos_run_step", "chaos_run_baseline", "chaos_faults_injected_total",
                   "chaos_guard_breaches_total", "chaos_run_rollback_failed", "chaos_active",
                   'ALERTS{alertname=~"ChaosFaultOrphaned'):
        assert metric in exprs, metric


def test_variables_are_filled_like_grafana_does() -> None:
    """The test helper replaces every variable form Grafana knows."""
    assert fill('rate(x{e=~"$environment"}[$__rate_interval]) ${environment} [[environment]]') \
        == 'rate(x{e=~".*"}[4s]) .* .*'
