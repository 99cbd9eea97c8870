"""Exemplars from Prometheus' ``/api/v1/query_exemplars``: the parser on the documented answer,
the request as the guards authenticate it, and a real Prometheus with exemplar storage."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gameday.models import PrometheusSettings
from gameday.report.exemplars import fetch_exemplars, parse_exemplars
from gameday.report.trace_parts import Exemplar
from tests.report.exemplar_stack import ExemplarStack, Kept, exemplar_prometheus

__all__ = ["exemplar_prometheus"]

#: The example answer of the Prometheus HTTP API documentation ("Querying exemplars").
DOCUMENTED = {
    "status": "success",
    "data": [
        {"seriesLabels": {"__address__": "prometheus:8090",
                          "__name__": "test_exemplar_metric_total",
                          "instance": "prometheus:8090", "job": "prometheus",
                          "service": "bar"},
         "exemplars": [{"labels": {"trace_id": "EpTxMJ40fUus7aGY"}, "value": "6",
                        "timestamp": 1600096945.479}]},
        {"seriesLabels": {"__address__": "prometheus:8090",
                          "__name__": "test_exemplar_metric_total",
                          "instance": "prometheus:8090", "job": "prometheus",
                          "service": "foo"},
         "exemplars": [{"labels": {"trace_id": "Olp9XHlq763ccsfa"}, "value": "19",
                        "timestamp": 1600096955.479},
                       {"labels": {"trace_id": "hCtjygkIHwAN9vs4"}, "value": "20",
                        "timestamp": 1600096965.489}]},
    ],
}


def test_the_documented_answer_parses_into_exemplars() -> None:
    """Each exemplar with its trace id (lower case), value in ms (seconds × 1000) and time."""
    assert parse_exemplars(DOCUMENTED) == [
        Exemplar("eptxmj40fuus7agy", 6000.0, 1600096945.479),
        Exemplar("olp9xhlq763ccsfa", 19000.0, 1600096955.479),
        Exemplar("hctjygkihwan9vs4", 20000.0, 1600096965.489)]


def test_a_histogram_in_milliseconds_is_not_scaled_and_odd_exemplars_are_skipped() -> None:
    body = {"status": "success", "data": [
        {"seriesLabels": {"__name__": "latency_ms_bucket"}, "exemplars": [
            {"labels": {"traceID": "AB"}, "value": "262", "timestamp": 5},
            {"labels": {"user": "no trace id"}, "value": "1", "timestamp": 5},
            {"labels": {"trace_id": "cd"}, "value": "NaN", "timestamp": 5},
            {"labels": {"trace_id": "ef"}, "value": "not a number", "timestamp": 5},
            "not an exemplar"]},
        "not a series"]}
    assert parse_exemplars(body) == [Exemplar("ab", 262.0, 5.0)]


@pytest.mark.parametrize("body", [
    {"status": "error", "errorType": "bad_data", "error": "1:5: parse error"},
    {"status": "success", "data": {"not": "a list"}}, [1, 2]])
def test_an_answer_that_is_not_a_success_is_an_error(body: object) -> None:
    with pytest.raises(ValueError):
        parse_exemplars(body)


class _Capture(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]
    status = 200

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        body = json.dumps(DOCUMENTED if self.status == 200 else {"status": "error"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[str, list[dict[str, str]], type[_Capture]]]:
    """A server answering the documented exemplars and recording each request's headers."""
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Capture,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen, handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_query_carries_the_guards_token_and_the_window(
        capture: tuple[str, list[dict[str, str]], type[_Capture]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bearer token as the guards send it; one request per window with its start and end."""
    address, seen, _ = capture
    monkeypatch.setenv("GAMEDAY_TEST_PROM_TOKEN", "s3cret-token")
    settings = PrometheusSettings.model_validate(
        {"url": f"http://{address}", "token": {"env": "GAMEDAY_TEST_PROM_TOKEN"}})
    answers = asyncio.run(fetch_exemplars(settings, 'latency_bucket{service="a"}',
                                          [(10.0, 20.0), (20.0, 30.0)]))
    assert [len(a) for a in answers] == [3, 3]
    assert {r["authorization"] for r in seen} == {"Bearer s3cret-token"}
    paths = sorted(r["path"] for r in seen)
    assert paths[0].startswith("/api/v1/query_exemplars?query=latency_bucket")
    assert "start=10.000&end=20.000" in paths[0] and "start=20.000&end=30.000" in paths[1]


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
        capture: tuple[str, list[dict[str, str]], type[_Capture]]) -> None:
    """``user:password@`` authenticates; an error names the URL without them."""
    address, seen, handler = capture
    settings = PrometheusSettings(url=f"http://alice:hunter2@{address}")
    handler.status = 500
    (answer,) = asyncio.run(fetch_exemplars(settings, "x", [(1.0, 2.0)]))
    expected = "Basic " + base64.b64encode(b"alice:hunter2").decode()
    assert seen[0]["authorization"] == expected
    assert isinstance(answer, str) and "refused the exemplar query (HTTP 500" in answer
    assert "hunter2" not in answer and f"http://{address}" in answer


def test_a_prometheus_without_the_api_or_gone_or_a_missing_token_is_a_reason(
        capture: tuple[str, list[dict[str, str]], type[_Capture]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    address, _, handler = capture
    handler.status = 404
    (old,) = asyncio.run(fetch_exemplars(PrometheusSettings(url=f"http://{address}"), "x",
                                         [(1.0, 2.0)]))
    assert old == f"Prometheus at http://{address} has no exemplar API (/api/v1/query_exemplars)"
    gone = PrometheusSettings(url="http://127.0.0.1:9", timeout=1.0)
    (down,) = asyncio.run(fetch_exemplars(gone, "x", [(1.0, 2.0)]))
    assert isinstance(down, str) and down.startswith("Prometheus at http://127.0.0.1:9 did not "
                                                     "answer the exemplar query")
    monkeypatch.delenv("GAMEDAY_TEST_UNSET_TOKEN", raising=False)
    unset = PrometheusSettings.model_validate(
        {"url": f"http://{address}", "token": {"env": "GAMEDAY_TEST_UNSET_TOKEN"}})
    assert asyncio.run(fetch_exemplars(unset, "x", [(1.0, 2.0), (2.0, 3.0)])) == [
        "prometheus.token: env:GAMEDAY_TEST_UNSET_TOKEN is not set"] * 2


@pytest.mark.integration
def test_a_real_prometheus_returns_each_windows_exemplars(
        exemplar_prometheus: ExemplarStack) -> None:
    """Prometheus (exemplar storage on) keeps what the histogram exposed; each window gets
    the exemplars stamped inside it, in milliseconds."""
    at = 1_700_000_000.0
    exemplar_prometheus.keep(Kept("real", "a" * 32, 0.262, at + 5),
                             Kept("real", "b" * 32, 0.051, at + 8),
                             Kept("real", "c" * 32, 0.9, at + 25),
                             Kept("elsewhere", "d" * 32, 2.0, at + 6))
    settings = PrometheusSettings(url=exemplar_prometheus.url)
    first, second, empty = asyncio.run(fetch_exemplars(
        settings, 'service_request_duration_seconds_bucket{service="real"}',
        [(at, at + 10), (at + 20, at + 30), (at + 40, at + 50)]))
    assert isinstance(first, list) and isinstance(second, list)
    assert sorted((e.trace_id, round(e.value_ms, 3), e.at) for e in first) == [
        ("a" * 32, 262.0, at + 5), ("b" * 32, 51.0, at + 8)]
    assert [(e.trace_id, e.value_ms) for e in second] == [("c" * 32, 900.0)]
    assert empty == []
