"""Faults end when their rule ends: what a removed or expired rule holds is let go at once.

Each test holds an exchange under a rule (blackhole, throttle, delay), ends the rule, and checks
from a raw socket or an httpx client that the hold ended within the issue's 100 ms (asserted
with a generous 0.5 s bound). Fault values are finite and bounded at the admin API.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.injector.conftest import LABELS, Proxy, read_response, rule, upstream_count

pytestmark = pytest.mark.integration

#: The issue asks for 100 ms; a loaded CI machine gets five times that.
RELEASE_BOUND = 0.5


def _delete(proxy: Proxy, rule_id: str) -> None:
    with proxy.admin() as admin:
        assert admin.delete(f"/rules/{rule_id}").status_code == 200


def _held(sock: socket.socket, seconds: float = 0.3) -> None:
    """Assert that nothing comes back on ``sock`` for ``seconds``."""
    sock.settimeout(seconds)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(10)


def _end_by_delete(proxy: Proxy, stored: dict[str, object]) -> None:
    _delete(proxy, str(stored["id"]))


def _end_by_replace(proxy: Proxy, stored: dict[str, object]) -> None:
    proxy.put(rule("abort", status=418, match={"path_prefix": "/nothing-here"}))


@pytest.mark.parametrize("end", [_end_by_delete, _end_by_replace], ids=["delete", "replace"])
def test_ending_a_blackhole_rule_closes_the_held_exchange(
        clean: Proxy, end: Callable[[Proxy, dict[str, object]], None]) -> None:
    """Deleting or replacing a blackhole rule closes the connection it holds at once."""
    before = upstream_count(clean)
    stored = clean.put(rule("blackhole", ttl=60, match={"path_prefix": "/hello"}))[0]
    with socket.create_connection(("127.0.0.1", clean.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        _held(sock)
        end(clean, stored)
        ended = time.monotonic()
        assert sock.recv(65536) == b""
        assert time.monotonic() - ended < RELEASE_BOUND
    assert upstream_count(clean) == before


def test_expiring_blackhole_rule_closes_the_held_exchange(clean: Proxy) -> None:
    """A blackhole rule that expires closes what it holds at its expiry."""
    stored = clean.put(rule("blackhole", ttl=1))[0]
    with socket.create_connection(("127.0.0.1", clean.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536) == b""
        assert time.time() - float(stored["expires_at"]) < RELEASE_BOUND


def test_expiring_bandwidth_rule_lifts_the_throttle(clean: Proxy) -> None:
    """When a bandwidth rule expires mid-response, the rest of the body comes unthrottled."""
    stored = clean.put(rule("bandwidth", ttl=1, kbps=8))[0]  # 1 kB/s: 200 s for 200 kB
    response = httpx.get(f"{clean.url}/bytes/200000", timeout=30)
    assert len(response.content) == 200000
    assert response.headers["x-chaos-fault"] == "bandwidth"
    assert time.time() - float(stored["expires_at"]) < RELEASE_BOUND


def test_deleting_a_bandwidth_rule_lifts_the_throttle(clean: Proxy) -> None:
    """Deleting a bandwidth rule mid-response sends the rest of the body at full speed."""
    stored = clean.put(rule("bandwidth", kbps=8))[0]
    with httpx.Client(timeout=30) as client, client.stream(
            "GET", f"{clean.url}/bytes/200000") as response:
        pieces = response.iter_bytes()
        got = len(next(pieces))
        assert got < 200000
        _delete(clean, str(stored["id"]))
        deleted = time.monotonic()
        got += sum(len(piece) for piece in pieces)
        assert time.monotonic() - deleted < RELEASE_BOUND
    assert got == 200000


def test_deleting_a_latency_rule_ends_the_pending_delay(clean: Proxy) -> None:
    """A request waiting out a 60 s delay goes on as soon as its rule is deleted."""
    stored = clean.put(rule("latency", ms=60000))[0]
    with socket.create_connection(("127.0.0.1", clean.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        _held(sock)
        _delete(clean, str(stored["id"]))
        deleted = time.monotonic()
        response = read_response(sock)
        assert time.monotonic() - deleted < RELEASE_BOUND
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b"hello")


def test_ending_a_delay_also_drops_an_ended_abort(clean: Proxy) -> None:
    """A delayed request whose abort rule went too goes to the upstream, not to an abort."""
    clean.put(rule("latency", ms=60000), rule("abort", status=503))
    with socket.create_connection(("127.0.0.1", clean.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        _held(sock)
        clean.put()
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(("fault", "field"), [
    ('{"kind": "bandwidth", "kbps": Infinity}', "fault.kbps"),
    ('{"kind": "bandwidth", "kbps": NaN}', "fault.kbps"),
    ('{"kind": "bandwidth", "kbps": 1e-300}', "fault.kbps"),
    ('{"kind": "bandwidth", "kbps": 0.5}', "fault.kbps"),
    ('{"kind": "bandwidth", "kbps": 10000001}', "fault.kbps"),
    ('{"kind": "latency", "ms": Infinity}', "fault.ms"),
    ('{"kind": "latency", "ms": 600001}', "fault.ms"),
    ('{"kind": "latency", "ms": 10, "jitter_ms": Infinity}', "fault.jitter_ms"),
    ('{"kind": "abort", "probability": NaN}', "fault.probability"),
])
def test_non_finite_or_unbounded_fault_values_are_refused(clean: Proxy, fault: str,
                                                          field: str) -> None:
    """Infinity, NaN and out-of-range magnitudes are a 400 naming the field."""
    body = f'{{"fault": {fault}, "labels": {json.dumps(LABELS)}, "ttl": 5}}'
    with clean.admin() as admin:
        response = admin.post("/rules", content=body,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert clean.rules() == []


def test_bandwidth_at_its_bounds_is_accepted(clean: Proxy) -> None:
    """1 and 10⁷ kbit/s are valid bandwidths."""
    stored = clean.put(rule("bandwidth", kbps=1), {**rule("bandwidth", kbps=10_000_000),
                                                   "id": "fast"})
    assert [r["fault"]["kbps"] for r in stored] == [1, 10_000_000]
