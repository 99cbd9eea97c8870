"""Exemplars: user-service's latency buckets name sampled traces, Prometheus keeps them, and
/metrics shows them in OpenMetrics only (the classic format stays for everyone else)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from gameday.demo.envfile import EXEMPLARS
from gameday.demo.state import TRACE_DIR
from gameday.tracing.otlp import SpanRecord
from tests.demo.trace_files import TraceTail
from tests.demo_stack import DemoStack

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: A bucket line of the request histogram that carries an exemplar.
EXEMPLAR_LINE = re.compile(
    r'^service_request_duration_seconds_bucket\{[^}]*service="user-service"[^}]*\} \S+ '
    r'# \{trace_id="([0-9a-f]{32})"\} \S+ \S+$', re.M)


def _metrics(url: str, accept: str | None = None) -> httpx.Response:
    headers = {"accept": accept} if accept else {}
    response = httpx.get(f"{url}/metrics", headers=headers, trust_env=False, timeout=10)
    response.raise_for_status()
    return response


def test_metrics_are_classic_text_unless_openmetrics_is_asked_for(
        demo_stack: DemoStack) -> None:
    """No Accept header: the text format, no exemplars. Prometheus's Accept header:
    OpenMetrics, with ``# {trace_id="…"}`` on the request histogram's buckets."""
    url = demo_stack.user_service_url
    classic = _metrics(url)
    assert classic.headers["content-type"].startswith("text/plain;")
    assert "# {" not in classic.text and "# EOF" not in classic.text
    assert re.search(r"^service_requests_total\{", classic.text, re.M)
    accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    deadline = time.monotonic() + 60
    while True:
        current = _metrics(url, accept)
        assert current.headers["content-type"] == OPENMETRICS
        if EXEMPLAR_LINE.search(current.text):
            break
        assert time.monotonic() < deadline, "no exemplar on user-service's buckets in 60 s"
        time.sleep(0.5)
    assert current.text.endswith("# EOF\n")
    # Same series either way: OpenMetrics names the counter family without _total, its
    # samples keep it.
    assert re.search(r"^service_requests_total\{", current.text, re.M)
    assert "# TYPE service_requests counter" in current.text


def _exemplar_trace_ids(prometheus: str, query: str, start: float) -> set[str]:
    params: dict[str, Any] = {"query": query, "start": f"{start:.3f}",
                              "end": f"{time.time():.3f}"}
    response = httpx.get(f"{prometheus}/api/v1/query_exemplars", params=params,
                         trust_env=False, timeout=10)
    response.raise_for_status()
    return {exemplar["labels"]["trace_id"] for series in response.json()["data"]
            for exemplar in series["exemplars"] if "trace_id" in exemplar["labels"]}


def test_prometheus_keeps_exemplars_that_name_traces_in_the_files(
        demo_stack: DemoStack) -> None:
    """The environment file names the trace folder and the histogram; Prometheus (exemplar
    storage on) returns exemplars of that histogram whose trace ids are traces in the files,
    user-service's server span among their spans."""
    tracing = demo_stack.environment().tracing
    assert tracing.files == str(demo_stack.state_dir / TRACE_DIR)
    assert tracing.exemplars == EXEMPLARS
    tail = TraceTail(demo_stack.state_dir / TRACE_DIR)
    began = time.time()
    query = tracing.exemplars

    def matched(spans: list[SpanRecord]) -> set[str] | None:
        served = {span.trace_id for span in spans
                  if span.service == "user-service" and span.kind == "server"}
        found = _exemplar_trace_ids(demo_stack.prometheus_url, query, began) & served
        return found or None

    assert tail.wait(matched, "exemplar whose trace is in the files")
