"""TCP mode's admin API: the HTTP mode's API with TCP rules; hostile input never crashes it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.injector.conftest import LABELS, ROOT, TOKEN, Proxy, rule, samples, wait_for
from tests.injector.tcp_client import connect, round_trip
from tests.injector.tcp_servers import echo_and_proxy
from tests.injector.test_openapi import check_case

pytestmark = pytest.mark.integration


def test_health_names_the_mode(proxy: Proxy) -> None:
    """/health says tcp and names the upstream as HOST:PORT."""
    health = httpx.get(f"{proxy.admin_url}/health", timeout=5).json()
    assert health["mode"] == "tcp" and health["upstream"].startswith("127.0.0.1:")


def test_openapi_describes_tcp_rules(proxy: Proxy) -> None:
    """The schema's fault union is TCP's: timeout, slicer and limit_data, no abort."""
    document = httpx.get(f"{proxy.admin_url}/openapi.json", timeout=5).json()
    mapping = document["components"]["schemas"]["RuleInput"]["properties"]["fault"][
        "discriminator"]["mapping"]
    assert set(mapping) == {"latency", "reset", "blackhole", "bandwidth", "timeout", "slicer",
                            "limit_data"}
    assert "tcp mode" in document["info"]["title"]


@pytest.mark.parametrize("fault, field", [
    ({"kind": "abort", "status": 503}, "rules.0.fault"),
    ({"kind": "latency", "ms": 5, "match": {"methods": ["GET"]}}, "rules.0.fault"),
    ({"kind": "latency", "ms": 600_001}, "rules.0.fault.ms"),
    ({"kind": "bandwidth", "kbps": 0}, "rules.0.fault.kbps"),
    ({"kind": "limit_data", "bytes": -5}, "rules.0.fault.bytes"),
    ({"kind": "slicer", "size_bytes": 4, "size_variation": 9}, "rules.0.fault"),
    ({"kind": "timeout", "ms": 10, "direction": "sideways"}, "rules.0.fault.direction"),
])
def test_invalid_rules_are_400_and_change_nothing(proxy: Proxy, fault: dict[str, Any],
                                                  field: str) -> None:
    """A refused rule names its field; the rules in place stay."""
    kept = proxy.put(rule("latency", ms=1))
    with proxy.admin() as admin:
        response = admin.put("/rules", json={"rules": [{"fault": fault, "labels": LABELS,
                                                        "ttl": 10}]})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert proxy.rules() == kept


def test_non_finite_numbers_are_refused(proxy: Proxy) -> None:
    """Infinity and NaN, which Python's JSON reads, never become a delay."""
    with proxy.admin() as admin:
        for value in (b"Infinity", b"NaN", b"1e999"):
            body = (b'{"fault": {"kind": "latency", "ms": ' + value + b'}, "labels": '
                    b'{"run": "r", "scenario": "s", "environment": "e", "step": 1}, "ttl": 5}')
            response = admin.post("/rules", content=body,
                                  headers={"Content-Type": "application/json"})
            assert response.status_code == 400, value
    assert proxy.rules() == []


def test_rules_need_the_token(proxy: Proxy) -> None:
    """Without the bearer token /rules is 401; /health and /metrics stay open."""
    assert httpx.get(f"{proxy.admin_url}/rules", timeout=5).status_code == 401
    assert httpx.get(f"{proxy.admin_url}/rules", timeout=5,
                     headers={"Authorization": "Bearer wrong-token-0123456"}).status_code == 401
    assert httpx.get(f"{proxy.admin_url}/metrics", timeout=5).status_code == 200


def test_a_rule_expires_by_itself_and_its_gauge_drops(proxy: Proxy) -> None:
    """TTL 1 s: the rule leaves the list with no traffic, chaos_active goes to 0, logged."""
    proxy.put(rule("latency", ttl=1, ms=50))
    active = [v for labels, v in samples(proxy, "chaos_active") if labels["fault"] == "latency"]
    assert active == [1.0]
    wait_for(lambda: proxy.rules() == [], 5, "expiry")
    active = [v for labels, v in samples(proxy, "chaos_active") if labels["fault"] == "latency"]
    assert active == [0.0]
    assert any(event["rule"]["fault"]["kind"] == "latency" for event in proxy.events("expired"))


def test_listing_by_run_and_deleting_by_run(proxy: Proxy) -> None:
    """Labels work as in HTTP mode: ?run= lists and removes one run's rules."""
    other = {**LABELS, "run": "other-run"}
    proxy.put(rule("latency", ms=1), {"fault": {"kind": "blackhole", "direction": "upstream"},
                                      "labels": other, "ttl": 30})
    with proxy.admin() as admin:
        listed = admin.get("/rules", params={"run": "other-run"}).json()["rules"]
        assert [r["fault"]["kind"] for r in listed] == ["blackhole"]
        assert admin.delete("/rules", params={"run": "other-run"}).json() == {"removed": 1}
    assert [r["fault"]["kind"] for r in proxy.rules()] == ["latency"]


def test_garbage_on_the_admin_port_does_not_crash_it(proxy: Proxy) -> None:
    """Bytes that are no HTTP, huge heads and a dropped body: the API answers after them."""
    for junk in (b"\x00\xff" * 1000 + b"\r\n\r\n", b"GET /" + b"a" * 70_000,
                 b"PUT /rules HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n{",
                 b"POST /rules HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        with socket.create_connection(("127.0.0.1", proxy.admin_port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
    assert httpx.get(f"{proxy.admin_url}/health", timeout=5).status_code == 200
    with connect(proxy) as sock:
        round_trip(sock)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_admin_api_conforms(proxy: Proxy, mode: GenerationMode) -> None:
    """Generated calls against the TCP schema never get a 5xx; rejected ones change nothing."""
    schema = schemathesis.openapi.from_url(f"{proxy.admin_url}/openapi.json")
    for operation in [result.ok() for result in schema.get_all_operations()]:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            check_case(proxy, case)

        try:
            run()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE
    with connect(proxy) as sock:  # the data plane is still up after all of that
        proxy.put()
        round_trip(sock)


@pytest.mark.parametrize("argv, message", [
    (["--upstream", "http://127.0.0.1:5432"], "expected HOST:PORT in TCP mode"),
    (["--upstream", "127.0.0.1:5432", "--head-timeout", "5s"], "HTTP mode only"),
])
def test_tcp_mode_command_line_mistakes_exit_2(argv: list[str], message: str) -> None:
    """An HTTP URL or an HTTP deadline given to TCP mode: exit 2, saying why."""
    result = subprocess.run(
        [sys.executable, "-m", "gameday", "proxy", "--mode", "tcp", "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", *argv], capture_output=True, text=True, timeout=60,
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GAMEDAY_PROXY_TOKEN": TOKEN},
        start_new_session=True)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_a_proxy_started_with_a_target_keeps_to_it(tmp_path: Path) -> None:
    """--target works in TCP mode too: a rule for another target is refused."""
    with echo_and_proxy(tmp_path, args=("--target", "user-service/postgres")) as (_, proxy):
        with proxy.admin() as admin:
            refused = admin.post("/rules", json={**rule("latency", ms=1), "target": "x/y"})
            stored = admin.post("/rules", json=rule("latency", ms=1)).json()
        assert refused.status_code == 400 and refused.json()["field"] == "target"
        assert stored["target"] == "user-service/postgres"
