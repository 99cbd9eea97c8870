"""Learn phase: the postmortem, its charts, the catalog's history and the Prefect artifacts."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from gameday.models import Environment, Scenario
from gameday.protocol.learn import Learned, learn
from gameday.report import GameDayReport, render_markdown


def artifact_key(kind: str, report: GameDayReport) -> str:
    """``kind-scenario-environment`` in lowercase letters, digits and dashes (Prefect's rule).

    One key per scenario and environment: Prefect keeps every version under it, so the
    Artifacts page lists each scenario's latest postmortem with its history behind it.
    """
    raw = f"{kind}-{report.scenario}-{report.environment}".lower()
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")[:100]


@task(name="learn", cache_policy=NO_CACHE, retries=1)
async def learn_phase(run: str, scenario: Scenario, environment: Environment,
                      run_url: str | None) -> Learned:
    """Write ``postmortem.md`` with its charts, record the finding, attach the artifacts;
    the report (which the chat summary is cut from) and where its postmortem is.

    Rendering is safe to retry: files are replaced and the history keeps one line per run.
    """
    learned = await learn(run, scenario=scenario, environment=environment, run_url=run_url)
    report = learned.report
    # The Prefect UI cannot load the PNGs next to the file: the artifact names them instead
    # and keeps each chart's Prometheus link.
    await acreate_markdown_artifact(
        markdown=render_markdown(report, location=str(learned.path.parent)),
        key=artifact_key("postmortem", report), description=report.headline)
    await acreate_table_artifact(
        table=report.step_table(), key=artifact_key("steps", report),
        description=f"Steps of {report.scenario} in {report.environment}, against the baseline")
    return learned
