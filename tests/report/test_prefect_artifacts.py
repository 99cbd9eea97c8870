"""A game day on the demo stack leaves its postmortem as Prefect artifacts, charts and history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.flows.conftest import Bench, dump, outcome

pytestmark = pytest.mark.integration


async def artifacts(api: str, run: str) -> dict[str, Any]:
    """The artifacts of flow run ``run``, by key, read through the Prefect client."""
    with temporary_settings(updates={PREFECT_API_URL: api}):
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run)])))
    return {a.key: a for a in found}


def test_demo_run_leaves_artifacts_charts_and_history(bench: Bench) -> None:
    """A guard-aborted run: markdown and table artifacts on its flow run, PNGs, one finding."""
    code, out = bench.run("quick-trip")
    assert code == 4, out
    ((run, events),) = bench.journals().items()
    assert outcome(events) == "aborted", dump(events)

    found = asyncio.run(artifacts(str(bench.stack.state.prefect_api_url), run))
    markdown = found["postmortem-quick-trip-demo"]
    assert markdown.type == "markdown"
    text = str(markdown.data)
    assert "Aborted by a guard" in text and "## Suggested learnings" in text
    assert "![" not in text and "`latency.png`" in text  # no image the UI cannot load
    table = found["steps-quick-trip-demo"]
    assert table.type == "table"
    rows = json.loads(str(table.data))
    assert [r["severity"] for r in rows] == [1, 2]
    assert rows[1]["result"] == "stopped by error_rate_percent"

    folder = bench.root / "reports" / run
    report = (folder / "postmortem.md").read_text()
    assert "![p95 and p99 latency" in report and "The proxies fired the fault on" in report
    assert "This report is incomplete" not in report, report
    for name in ("latency.png", "errors.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"

    (line,) = (bench.catalog / "history" / "quick-trip.jsonl").read_text().splitlines()
    finding = json.loads(line)
    assert (finding["run"], finding["outcome"], finding["guard"]) == (
        run, "aborted", "error_rate_percent")
    assert Path(finding["postmortem"]).name == "postmortem.md"

    token = bench.stack.token
    for text in (report, str(markdown.data), str(table.data), line):
        assert token not in text
