"""The sinks an environment asks for, beyond the console and the journal."""

from __future__ import annotations

import os

from gameday.models import Environment
from gameday.notify.core import Sink
from gameday.notify.pushgateway import RunLabels, RunMetricsSink
from gameday.notify.slack import SlackConfig, SlackSink


def run_url(environment: Environment, run: str) -> str | None:
    """The run's page in the Prefect UI, when a Prefect server is known.

    ``PREFECT_UI_URL`` wins; otherwise the UI is where the API is, without ``/api``.
    """
    ui = os.environ.get("PREFECT_UI_URL")
    if not ui:
        api = os.environ.get("PREFECT_API_URL") or environment.prefect_api_url
        if not api:
            return None
        ui = api.rstrip("/").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{run}"


def sinks_for(environment: Environment, *, run: str, scenario: str) -> list[Sink]:
    """Slack (when ``notify.slack`` is set) and run metrics (when ``pushgateway_url`` is).

    Secrets are resolved here, before anything is injected: a Slack token that is referenced
    but not set raises ``ConfigError`` naming the reference, never a value.
    """
    sinks: list[Sink] = []
    slack = environment.notify.slack
    if slack is not None:
        sinks.append(SlackSink(SlackConfig.from_settings(slack), run_url(environment, run)))
    if environment.pushgateway_url:
        labels = RunLabels(run=run, scenario=scenario, environment=environment.name)
        sinks.append(RunMetricsSink(environment.pushgateway_url, labels))
    return sinks
