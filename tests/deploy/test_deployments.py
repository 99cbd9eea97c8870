"""The deployments: created by ``prefect deploy --all``, typed for the UI, runnable by a worker."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import SCENARIOS, Deployed

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_deploy_all_creates_the_three_deployments(deployed: Deployed) -> None:
    """game-day, weekly-resilience (cron with a time zone) and sweep exist on the pool."""
    for name in ("game-day/game-day", "weekly-resilience/weekly-resilience", "sweep/sweep"):
        found = deployed.api.deployment(name)
        assert found["work_pool_name"] == "gameday", name
        steps = found["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
        assert Path(steps["directory"]).resolve() == Path(__file__).resolve().parents[2]
    (schedule,) = deployed.api.deployment("weekly-resilience/weekly-resilience")["schedules"]
    assert schedule["schedule"]["cron"] == "0 10 * * 2"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"


def test_game_day_form_offers_the_catalog_and_refuses_others(deployed: Deployed) -> None:
    """The scenario parameter is the catalog's enum; an unknown one creates no run."""
    found = deployed.api.deployment("game-day/game-day")
    schema = found["parameter_openapi_schema"]
    ref = schema["properties"]["scenario"]["$ref"].rsplit("/", 1)[-1]
    assert sorted(schema["definitions"][ref]["enum"]) == sorted(s["name"] for s in SCENARIOS)
    before = len(deployed.api.runs(deployment_id={"any_": [found["id"]]}))
    done = deployed.command(PREFECT, "deployment", "run", "game-day/game-day",
                            "-p", "scenario=no-such-scenario")
    assert "Validation failed for field 'scenario'" in done.stdout, done.stdout
    assert len(deployed.api.runs(deployment_id={"any_": [found["id"]]})) == before


#: Run-form fields whose default means "the scenario's own", by parameter: (type, default).
PLAIN = {"max_severity": ("integer", 0), "duration": ("number", 0.0), "requester": ("string", ""),
         "mission": ("string", "")}


def test_game_day_form_has_plain_titled_fields(deployed: Deployed) -> None:
    """No "x | None" choices: plain typed fields with defaults, labels and descriptions."""
    properties = deployed.api.deployment("game-day/game-day")["parameter_openapi_schema"][
        "properties"]
    for name, (kind, default) in PLAIN.items():
        field = properties[name]
        assert "anyOf" not in field and "allOf" not in field, (name, field)
        assert field["type"] == kind and field["default"] == default, (name, field)
        assert field["title"] != name and field["description"], (name, field)
    assert properties["max_severity"]["minimum"] == 0
    for name, field in properties.items():
        assert "null" not in json.dumps(field), (name, field)
        assert field.get("title") and field["title"] != name, (name, field)
        assert field.get("description"), (name, field)


def test_game_day_form_offers_the_known_environments(deployed: Deployed) -> None:
    """environment is a drop-down of the known names; the server refuses a file path."""
    found = deployed.api.deployment("game-day/game-day")
    field = found["parameter_openapi_schema"]["properties"]["environment"]
    assert field["type"] == "string" and "demo" in field["enum"] and field["default"] == "demo"
    assert field["title"] == "Environment" and field["description"].startswith("Where to run")
    before = len(deployed.api.runs(deployment_id={"any_": [found["id"]]}))
    refused = deployed.api.attempt("POST", f"/deployments/{found['id']}/create_flow_run",
                                   json={"parameters": {"scenario": "ui-quick",
                                                        "environment": "/tmp/elsewhere.yaml"}})
    assert refused.status_code == 409 and "environment" in refused.text, refused.text
    assert len(deployed.api.runs(deployment_id={"any_": [found["id"]]})) == before


def test_triggered_run_completes_with_the_environment_block(bench: Deployed) -> None:
    """`prefect deployment run` → the worker runs it against the demo (environment by block)."""
    done = bench.command(PREFECT, "deployment", "run", "game-day/game-day",
                         "-p", "scenario=ui-quick", "-p", "environment=demo",
                         "-p", "requester=alice")
    match = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    assert match, done.stdout
    run = match.group(1)
    final = bench.api.wait_final(run, timeout=120)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    ended = [e for e in bench.journal(run) if getattr(e, "event", "") == "run_ended"]
    assert ended and ended[-1].outcome == "passed"  # type: ignore[union-attr]
    (slot,) = bench.notes(run, "slot")
    assert slot.limit == "gameday-env-demo"
    assert bench.rules() == []
    assert bench.api.limit("gameday-env-demo")["active_slots"] == 0


def test_weekly_runs_the_suite_below_sign_off(bench: Deployed) -> None:
    """Two short scenarios run as subflows, the severe one is skipped, one table artifact."""
    environment = bench.environment_file(sign_off_severity=2)
    run = bench.api.create_run("weekly-resilience/weekly-resilience", environment=environment)
    final = bench.api.wait_final(run, timeout=150)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    (artifact,) = bench.api.artifacts(run)
    assert artifact["type"] == "table" and artifact["key"] == "weekly-resilience-demo"
    rows = {row["scenario"]: row for row in json.loads(artifact["data"])}
    assert rows["weekly-a"]["outcome"] == rows["weekly-b"]["outcome"] == "passed", rows
    assert rows["weekly-severe"]["outcome"] == "skipped"
    assert "second person" in rows["weekly-severe"]["note"]
    children = bench.api.runs(parent_flow_run_id={"any_": [run]})
    assert len(children) == 2
    assert bench.rules() == []


def test_env_import_stores_secrets_in_blocks_unseen(deployed: Deployed) -> None:
    """The token is read at import, never printed, masked by the API; the block wins."""
    token = deployed.stack.token
    assert "game-day-environment/demo" in deployed.import_output
    assert token not in deployed.import_output
    document = deployed.api.call("GET", "/block_types/slug/game-day-environment/"
                                        "block_documents/name/demo")
    assert token not in json.dumps(document)
    assert set(document["data"]["secrets"].values()) == {"********"}


def test_blocks_win_over_the_environment_file(deployed: Deployed, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A name finds the Game Day Environment block before the state folder's file."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import load_environment

    stale = tmp_path / "demo" / "environment.yaml"
    stale.parent.mkdir()
    stale.write_text(deployed.stack.env_file.read_text().replace(
        deployed.stack.prometheus_url, "http://127.0.0.1:9"))
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", deployed.api.url)
    monkeypatch.delenv("GAMEDAY_DEMO_TOKEN")
    with temporary_settings(updates={PREFECT_API_URL: deployed.api.url}):
        found = load_environment("demo")
    assert found.prometheus.url == deployed.stack.prometheus_url
    token = found.endpoints[0].token
    assert token is not None and token.resolve() == deployed.stack.token
    assert "block" in token.describe()
    assert load_environment(str(stale)).prometheus.url == "http://127.0.0.1:9"
