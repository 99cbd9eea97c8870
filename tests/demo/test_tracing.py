"""The demo traced: one load request is one trace from the load generator to the stores, and
user-service's retries and breaker show in its spans."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gameday import procs
from gameday.demo.auth import issue_token
from gameday.demo.state import TRACE_DIR
from gameday.tracing import TRACE_DIR_ENV
from gameday.tracing.otlp import SpanRecord
from tests.demo.test_services import closed_port
from tests.demo.trace_files import TraceTail, by_trace, children, load_trace, status_of, url_of
from tests.demo_stack import DemoStack

pytestmark = pytest.mark.integration

#: The parts that write spans; the servers, exporters and Prefect write none.
TRACED = {"auth-service", "user-service", "loadgen", "auth-proxy", "cache-proxy", "db-proxy"}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode(errors="replace").partition("=")[::2]
                for item in raw.split(b"\0") if item)


def test_services_and_proxies_get_the_trace_folder(demo_stack: DemoStack) -> None:
    """GAMEDAY_TRACE_DIR is the state folder's traces/ in the services and proxies only; the
    load generator, the root of every trace, also gets the sampling share."""
    folder = str(demo_stack.state_dir / TRACE_DIR)
    assert Path(folder).is_dir()
    assert demo_stack.state.traces == folder
    for part in demo_stack.state.parts:
        environ = _environ(part.pid)
        assert (environ.get(TRACE_DIR_ENV) == folder) == (part.name in TRACED), part.name
    ratio = float(_environ(demo_stack.pids["loadgen"])["OTEL_TRACES_SAMPLER_ARG"])
    assert 0 < ratio <= 1


def test_a_load_request_is_one_trace_down_to_the_stores(demo_stack: DemoStack) -> None:
    """loadgen's client span is the root; user-service's server span its child; below it
    the client span to auth-service (auth-service's server span under it, through the proxy's
    when the proxy records one) and the Redis or PostgreSQL calls."""
    tail = TraceTail(demo_stack.state_dir / TRACE_DIR)
    found = tail.wait(load_trace, "complete load trace")
    assert len({span.trace_id for span in found.spans}) == 1
    assert found.root.name == "GET" and found.root.kind == "client"
    assert url_of(found.root).startswith(demo_stack.user_service_url + "/users/")
    assert found.server.name == "GET /users/{user_id}"
    assert found.server.attributes["http.route"] == "/users/{user_id}"
    assert found.auth_server.name == "GET /verify"
    assert status_of(found.auth_call) == 200
    assert all(span.service == "user-service" for span in found.stores)
    # Time nests as the calls do.
    assert found.root.start_ns <= found.server.start_ns <= found.auth_call.start_ns
    assert found.auth_call.start_ns <= found.auth_server.start_ns


def test_plumbing_makes_no_traces(demo_stack: DemoStack) -> None:
    """Scrapes, health and readiness probes start no trace of their own."""
    tail = TraceTail(demo_stack.state_dir / TRACE_DIR)
    def answers(path: str) -> bool:
        url = demo_stack.user_service_url + path
        return httpx.get(url, trust_env=False, timeout=10).status_code == 200

    for path in ("/health", "/ready", "/metrics"):
        # Polled: a test before this one may have just let a dependency fault go, and
        # readiness says so until the pools have reconnected.
        procs.wait_until(lambda path=path: answers(path), timeout=60, interval=0.5,
                         what=f"user-service {path} answering 200")
    tail.wait(load_trace, "complete load trace")  # spans after the probes reached the files
    # The readiness probe reached auth-service through its proxy: unsampled, no span there
    # either. (Only the load generator starts traces; a game day may write its own.)
    stray = [span for span in tail.spans() if not span.parent_id and (
        span.service in ("user-service", "auth-service")
        or span.attributes.get("url.path") in ("/health", "/ready", "/metrics"))]
    assert not stray


# --- retries and the breaker, in a user-service of its own -----------------------------------


@pytest.fixture
def aborting_user_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A traced user-service whose every auth call its transport rules abort with 503."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{
        "fault": {"kind": "abort", "status": 503}, "ttl": 600,
        "labels": {"run": "run-1", "scenario": "t", "environment": "demo", "step": 1}}]}))
    traces = tmp_path / "traces"
    port = procs.free_port()
    nowhere = closed_port()
    argv = [sys.executable, "-m", "gameday.demo", "user-service", "--port", str(port),
            "--auth-url", f"http://127.0.0.1:{nowhere}",
            "--redis-url", f"redis://127.0.0.1:{nowhere}/0",
            "--db-url", f"postgresql://gameday@127.0.0.1:{nowhere}/profiles",
            "--transport-rules", str(rules), "--backoff-ms", "1"]
    env = {TRACE_DIR_ENV: str(traces), "OTEL_TRACES_SAMPLER_ARG": "1"}
    process = procs.start(argv, log=tmp_path / "user-service.log", env=env)
    try:
        procs.wait_until(lambda: procs.port_open(port), 60, what="user-service")
        yield f"http://127.0.0.1:{port}", traces
    finally:
        procs.stop(process.pid)


def _server_spans(spans: list[SpanRecord]) -> list[SpanRecord]:
    return [span for span in spans
            if span.service == "user-service" and span.kind == "server"]


def test_retries_and_the_open_breaker_show_in_the_spans(
        aborting_user_service: tuple[str, Path]) -> None:
    """Each auth attempt is a client span under the request's server span, the retries
    numbered and each marked with the fault; once the breaker opens, the refused request's
    span has a breaker.open event and breaker.state open."""
    url, folder = aborting_user_service
    tail = TraceTail(folder)
    headers = {"authorization": f"Bearer {issue_token('1')}"}
    codes = []
    with httpx.Client(trust_env=False, timeout=30) as client:
        # The breaker opens after ten failed calls out of its window; a few more to spare.
        for _ in range(14):
            codes.append(client.get(f"{url}/users/1", headers=headers).status_code)
    assert codes[0] == 502 and codes[-1] == 503, codes

    def both(spans: list[SpanRecord]) -> tuple[list[SpanRecord], SpanRecord] | None:
        traces = by_trace(spans)
        retried = [span for span in _server_spans(spans)
                   if len(children(traces[span.trace_id], span)) == 3]
        refused = [span for span in _server_spans(spans)
                   if any(event.name == "breaker.open" for event in span.events)]
        if not retried or not refused:
            return None
        return children(traces[retried[0].trace_id], retried[0]), refused[0]

    attempts, refused = tail.wait(both, "retried and refused requests")
    assert {url_of(span) for span in attempts} == {url_of(attempts[0])}
    assert "/verify" in url_of(attempts[0])
    retries = [str(span.attributes.get("http.request.resend_count", 0)) for span in attempts]
    assert sorted(retries) == ["0", "1", "2"]
    for span in attempts:
        assert span.kind == "client" and status_of(span) == 503
        # The fault transport ran inside the attempt's span: it marked that span.
        assert span.attributes.get("chaos.faulted") is True
    [event] = [event for event in refused.events if event.name == "breaker.open"]
    assert event.attributes == {"dependency": "auth-service"}
    assert refused.attributes["breaker.state"] == "open"
    assert status_of(refused) == 503
