"""The proxy in the trace: auth-service's server span is the child of auth-proxy's span, which
is the child of user-service's client span, so a delay the proxy adds shows where it is."""

from __future__ import annotations

import pytest

from gameday.demo.state import TRACE_DIR
from gameday.tracing.otlp import SpanRecord
from tests.demo.trace_files import LoadTrace, TraceTail, load_trace
from tests.demo_stack import DemoStack

pytestmark = pytest.mark.integration


def _through_proxy(spans: list[SpanRecord]) -> LoadTrace | None:
    return load_trace(spans, through_proxy=True)


def test_auth_service_is_the_child_of_the_proxy_span(demo_stack: DemoStack) -> None:
    """user-service client span → auth-proxy's server span → auth-service's server span, in
    the trace the load generator started."""
    found = TraceTail(demo_stack.state_dir / TRACE_DIR).wait(_through_proxy,
                                                            "load trace through auth-proxy")
    [proxy] = found.between
    assert proxy.kind == "server"
    assert proxy.service == "auth-proxy"
    assert proxy.parent_id == found.auth_call.span_id
    assert found.auth_server.parent_id == proxy.span_id
    assert proxy.attributes.get("url.path") == "/verify"
    assert proxy.trace_id == found.root.trace_id
    # The proxy received the request before it forwarded it.
    assert proxy.start_ns <= found.auth_server.start_ns
