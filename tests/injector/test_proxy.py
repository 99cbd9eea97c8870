"""The real proxy (``chaosctl proxy``) in front of a real upstream, driven by real httpx clients."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gameday import procs
from tests.injector.conftest import (
    LABELS,
    ROOT,
    Proxy,
    rule,
    samples,
    start_proxy,
    start_upstream,
    upstream_count,
    wait_for,
)

pytestmark = pytest.mark.integration


# -- forwarding -----------------------------------------------------------------------------------


def test_forwards_without_rules(clean: Proxy) -> None:
    """With no rules a request passes unchanged and carries no chaos headers."""
    response = httpx.get(f"{clean.url}/hello", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello"
    assert "x-chaos-fault" not in response.headers


def test_streams_large_and_chunked_bodies(clean: Proxy) -> None:
    """A chunked 3 MB response and a chunked 2 MB upload stream through intact."""
    with httpx.Client(timeout=30) as client:
        assert len(client.get(f"{clean.url}/bytes/3000000").content) == 3_000_000
        payload = bytes(range(256)) * 8192

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(payload), 65536):
                yield payload[start:start + 65536]

        echoed = client.post(f"{clean.url}/echo", content=pieces())
        assert echoed.status_code == 200
        assert echoed.content == payload
        sized = client.post(f"{clean.url}/echo", content=payload)
        assert sized.content == payload


def test_upload_waits_out_a_delay_intact(clean: Proxy) -> None:
    """A chunked 1 MB upload held by a latency rule reaches the upstream intact."""
    clean.put(rule("latency", ms=200))
    payload = bytes(range(256)) * 4096

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 32768):
            yield payload[start:start + 32768]

    started = time.monotonic()
    echoed = httpx.post(f"{clean.url}/echo", content=pieces(), timeout=30)
    assert time.monotonic() - started >= 0.19
    assert echoed.content == payload


def test_keep_alive_and_pipelining(clean: Proxy) -> None:
    """Two pipelined requests on one connection get two responses in order."""
    with socket.create_connection(("127.0.0.1", clean.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 200") < 2 or not data.rstrip().endswith(b"}"):
            assert time.monotonic() < deadline, data
            data += sock.recv(65536)
    first, second = data.index(b"hello"), data.index(b'{"count"')
    assert first < second


def test_malformed_request_gets_400(clean: Proxy) -> None:
    """A request the parser cannot read is answered 400 and the proxy keeps serving."""
    with socket.create_connection(("127.0.0.1", clean.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
                     b"\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert httpx.get(f"{clean.url}/hello", timeout=5).status_code == 200


# -- each fault, as the client sees it ------------------------------------------------------------


def test_latency_delays_and_marks(clean: Proxy) -> None:
    """A latency rule delays the answer and marks request and response."""
    clean.put(rule("latency", ms=300))
    started = time.monotonic()
    response = httpx.get(f"{clean.url}/headers", timeout=10)
    assert time.monotonic() - started >= 0.28
    assert response.headers["x-chaos-fault"] == "latency"
    assert response.headers["x-chaos-scenario"] == "slow-payments"
    assert "chaos.scenario=slow-payments" in response.headers["baggage"]
    seen = response.json()
    assert seen["x-chaos-fault"] == ["latency"]
    assert any("chaos.run=run-1" in value for value in seen["baggage"])


def test_abort_answers_before_the_upstream(clean: Proxy) -> None:
    """An abort rule answers its status with a JSON body; the upstream never sees the call."""
    before = upstream_count(clean)
    clean.put(rule("abort", status=503, match={"path_prefix": "/hello"}))
    response = httpx.get(f"{clean.url}/hello", timeout=5)
    assert response.status_code == 503
    assert response.json()["fault"] == "abort"
    assert response.headers["x-chaos-fault"] == "abort"
    assert upstream_count(clean) == before


def test_reset_breaks_the_connection(clean: Proxy) -> None:
    """A reset rule makes the client's call fail with a transport error."""
    clean.put(rule("reset"))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{clean.url}/hello", timeout=5)


def test_blackhole_holds_until_the_client_gives_up(clean: Proxy) -> None:
    """A blackhole rule never answers: the client's read timeout fires."""
    clean.put(rule("blackhole"))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{clean.url}/hello", timeout=httpx.Timeout(5, read=0.5))
    assert time.monotonic() - started >= 0.45


def test_bandwidth_throttles_the_body(clean: Proxy) -> None:
    """A bandwidth rule of 80 kbit/s takes about 2 s for 20 kB."""
    clean.put(rule("bandwidth", kbps=80))
    started = time.monotonic()
    response = httpx.get(f"{clean.url}/bytes/20000", timeout=30)
    elapsed = time.monotonic() - started
    assert len(response.content) == 20000
    assert 1.5 <= elapsed <= 10, elapsed
    assert response.headers["x-chaos-fault"] == "bandwidth"


def test_match_limits_where_a_fault_applies(clean: Proxy) -> None:
    """A rule matching POST /hello leaves GET /hello and other paths alone."""
    clean.put(rule("abort", status=500, match={"methods": ["POST"], "path_prefix": "/hello"}))
    assert httpx.get(f"{clean.url}/hello", timeout=5).status_code == 200
    assert httpx.post(f"{clean.url}/hello", timeout=5).status_code == 500
    assert httpx.post(f"{clean.url}/echo", content=b"x", timeout=5).status_code == 200


def test_admin_change_applies_to_the_next_request(clean: Proxy) -> None:
    """On one keep-alive connection, the request after a rule change sees the change."""
    with httpx.Client(base_url=clean.url, timeout=5) as client:
        assert client.get("/hello").status_code == 200
        stored = clean.put(rule("abort", status=418))
        assert client.get("/hello").status_code == 418
        with clean.admin() as admin:
            assert admin.delete(f"/rules/{stored[0]['id']}").status_code == 200
        assert client.get("/hello").status_code == 200


# -- TTL ------------------------------------------------------------------------------------------


def test_rule_expires_with_no_traffic(clean: Proxy) -> None:
    """A rule leaves the list and chaos_active drops to 0 at its expiry, with no requests."""
    with clean.admin() as admin:
        created = admin.post("/rules", json=rule("latency", ttl=1.0, ms=10)).json()
    labels = {**{k: str(v) for k, v in LABELS.items() if k != "step"}, "fault": "latency",
              "target": "checkout/payments"}
    assert (labels, 1.0) in samples(clean, "chaos_active")
    gone_at = wait_for(lambda: clean.rules() == [], 5, "rule expiry")
    assert gone_at - created["expires_at"] < 1.0
    assert (labels, 0.0) in samples(clean, "chaos_active")
    expired = [e for e in clean.events("expired") if e["rule"]["id"] == created["id"]]
    assert expired and expired[0]["ts"] - created["expires_at"] < 1.0


# -- admin API ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"fault": {"kind": "latency", "ms": -5}, "labels": LABELS, "ttl": 5}, "fault.ms"),
    ({"fault": {"kind": "cpu", "load_percent": 50}, "labels": LABELS, "ttl": 5}, "fault"),
    ({"fault": {"kind": "abort"}, "labels": {**LABELS, "run": ""}, "ttl": 5}, "labels.run"),
    ({"fault": {"kind": "abort"}, "labels": LABELS, "ttl": 601}, "ttl"),
    ({"fault": {"kind": "abort"}, "labels": LABELS}, "body"),
    ({"fault": {"kind": "abort"}, "labels": LABELS, "ttl": 5, "extra": 1}, "extra"),
    ({"fault": {"kind": "abort"}, "labels": LABELS, "ttl": 5, "target": "other"}, "target"),
    ({"fault": {"kind": "abort"}, "labels": LABELS, "expires_at": 1000}, "expires_at"),
    # A match no request head could carry (a header name that is no token, characters
    # outside latin-1) is refused, not left to fail when the proxy indexes its rules.
    ({"fault": {"kind": "abort", "match": {"headers": {"x-\U000b5067": "v"}}},
      "labels": LABELS, "ttl": 5}, "fault.match.headers.x-\U000b5067.[key]"),
    ({"fault": {"kind": "abort", "match": {"headers": {"x-a": "line\nbreak"}}},
      "labels": LABELS, "ttl": 5}, "fault.match.headers.x-a"),
    ({"fault": {"kind": "abort", "match": {"path_prefix": "/\u20ac"}},
      "labels": LABELS, "ttl": 5}, "fault.match.path_prefix"),
])
def test_bad_rule_is_rejected_naming_the_field(clean: Proxy, body: dict[str, object],
                                               field: str) -> None:
    """Invalid rule input is answered 400 naming the field, and the rules stay as they were."""
    kept = clean.put(rule("latency", ms=1))
    with clean.admin() as admin:
        response = admin.post("/rules", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
        bad_set = admin.put("/rules", json={"rules": [rule("abort"), body]})
        assert bad_set.status_code == 400
        assert bad_set.json()["field"] == f"rules.1.{field}".removesuffix(".body")
        assert admin.put("/rules", content=b"{not json").status_code == 400
    assert clean.rules() == kept


def test_token_is_required(clean: Proxy) -> None:
    """The rules API answers 401 without or with a wrong token; health stays open."""
    assert httpx.get(f"{clean.admin_url}/rules", timeout=5).status_code == 401
    wrong = httpx.post(f"{clean.admin_url}/rules", json=rule("abort"), timeout=5,
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{clean.admin_url}/health", timeout=5).json()["status"] == "ok"
    assert clean.rules() == []


def test_delete_by_run_and_by_id(clean: Proxy) -> None:
    """DELETE /rules?run=X removes that run's rules only; an unknown id is 404."""
    other = {**rule("abort"), "labels": {**LABELS, "run": "run-2"}}
    clean.put(rule("latency", ms=1), rule("reset"), other)
    with clean.admin() as admin:
        assert admin.get("/rules", params={"run": "run-1"}).json()["rules"][0]["labels"][
            "run"] == "run-1"
        assert admin.delete("/rules", params={"run": "run-1"}).json() == {"removed": 2}
        assert [r["labels"]["run"] for r in admin.get("/rules").json()["rules"]] == ["run-2"]
        assert admin.delete("/rules/no-such-rule").status_code == 404


def test_non_loopback_admin_needs_a_token(tmp_path: object) -> None:
    """Starting with a non-loopback admin address and no token is refused (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "gameday", "proxy", "--listen", "127.0.0.1:0", "--upstream",
         "http://127.0.0.1:9", "--admin", "0.0.0.0:0", "--token-env", "NO_SUCH_TOKEN_VAR"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "loopback" in done.stderr


# -- upstream failure -----------------------------------------------------------------------------


def test_upstream_down_gives_502_then_recovers(tmp_path: object) -> None:
    """With the upstream down the proxy answers 502 JSON and keeps serving; then it recovers."""
    from pathlib import Path

    folder = Path(str(tmp_path))
    port = procs.free_port()
    proxy = start_proxy(f"http://127.0.0.1:{port}", folder / "proxy.log")
    upstream = None
    try:
        with httpx.Client(base_url=proxy.url, timeout=5) as client:
            down = client.get("/hello")
            assert down.status_code == 502
            assert down.json()["error"] == "upstream unreachable"
            assert client.get("/hello").status_code == 502
            upstream = start_upstream(folder / "upstream.log", port)
            assert client.get("/hello").text == "hello"
    finally:
        if upstream is not None:
            procs.stop(upstream.pid)
        procs.stop(proxy.pid)


# -- load and metrics -----------------------------------------------------------------------------


def test_500_connections_held_at_once_all_complete(clean: Proxy) -> None:
    """500 concurrent connections held by a 1 s latency rule all get their answer."""
    clean.put(rule("latency", ms=1000))

    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=clean.url, limits=limits,
                                     timeout=httpx.Timeout(60)) as client:
            responses = await asyncio.gather(*(client.get("/hello") for _ in range(500)))
        return [r.status_code for r in responses]

    started = time.monotonic()
    codes = asyncio.run(run())
    assert codes == [200] * 500
    # Held at once: far less than 500 sequential seconds.
    assert time.monotonic() - started < 45


def test_metrics_parse_and_count_injections(clean: Proxy) -> None:
    """/metrics parses with prometheus_client and counts each injected fault."""
    labels = {"run": "metrics-run", "scenario": "s", "environment": "dev", "fault": "abort",
              "target": "checkout/payments"}

    def injected() -> float:
        values = [v for lab, v in samples(clean, "chaos_faults_injected_total") if lab == labels]
        return values[0] if values else 0.0

    before = injected()
    stored = clean.put({**rule("abort", status=502),
                        "labels": {**LABELS, "run": "metrics-run", "scenario": "s"}})
    with httpx.Client(base_url=clean.url, timeout=5) as client:
        for _ in range(7):
            assert client.get("/hello").status_code == 502
    assert injected() == before + 7
    assert (labels, 1.0) in samples(clean, "chaos_active")
    assert (labels, stored[0]["expires_at"]) in samples(
        clean, "chaos_fault_expiry_timestamp_seconds")
    codes = {lab["code"]: v for lab, v in samples(clean, "chaos_proxy_requests_total")}
    assert codes["502"] >= 7
    assert samples(clean, "chaos_proxy_request_duration_seconds_count")[0][1] > 0
    assert json.loads(httpx.get(f"{clean.admin_url}/openapi.json").text)["openapi"]
