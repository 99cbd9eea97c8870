"""WebSockets through the real proxy: after a 101 it tunnels bytes both ways; other upgrades
(``h2c``) are stripped and CONNECT is refused.

The raw upstream's ``/ws`` accepts the handshake and echoes every byte; the tests speak raw
bytes after the 101, since the proxy must pass whatever the tunnel carries.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.injector.conftest import Proxy, RawUpstream, exchange, rule

pytestmark = pytest.mark.integration

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.fixture
def ws(raw_proxy: tuple[Proxy, RawUpstream]) -> Iterator[Proxy]:
    """The raw upstream's proxy, with no rules before and after the test."""
    proxy = raw_proxy[0]
    proxy.put()
    yield proxy
    proxy.put()


def handshake(proxy: Proxy) -> tuple[socket.socket, bytes]:
    """Open a connection and upgrade it; the socket and the response head."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(HANDSHAKE)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    return sock, head


def echo(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data`` and read as many bytes back."""
    sock.sendall(data)
    back = b""
    while len(back) < len(data):
        chunk = sock.recv(65536)
        assert chunk, len(back)
        back += chunk
    return back


def test_websocket_upgrade_tunnels_bytes_both_ways(ws: Proxy) -> None:
    """A WebSocket handshake gets the 101 and the connection then carries bytes both ways."""
    sock, head = handshake(ws)
    with sock:
        assert head.startswith(b"HTTP/1.1 101"), head
        lower = head.lower()
        assert b"\r\nupgrade: websocket\r\n" in lower
        assert b"\r\nconnection: upgrade\r\n" in lower
        assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in lower
        assert echo(sock, b"\x81\x05hello") == b"\x81\x05hello"
        payload = bytes(range(256)) * 8192  # 2 MB: flow control both ways
        assert echo(sock, payload) == payload


def test_latency_applies_at_the_handshake(ws: Proxy) -> None:
    """A latency rule delays the 101; the tunnel then runs at full speed."""
    ws.put(rule("latency", ms=300))
    started = time.monotonic()
    sock, head = handshake(ws)
    with sock:
        assert time.monotonic() - started >= 0.28
        assert head.startswith(b"HTTP/1.1 101")
        assert b"x-chaos-fault: latency" in head.lower()
        assert echo(sock, b"ping") == b"ping"


def test_abort_answers_the_handshake(ws: Proxy) -> None:
    """An abort rule answers the handshake with its status: no tunnel."""
    ws.put(rule("abort", status=503))
    reply = exchange(ws.port, HANDSHAKE)
    assert reply.startswith(b"HTTP/1.1 503")


def test_bandwidth_throttles_the_tunnel(ws: Proxy) -> None:
    """A bandwidth rule of 80 kbit/s paces what the tunnel brings back: 20 kB take ~2 s."""
    ws.put(rule("bandwidth", kbps=80))
    sock, head = handshake(ws)
    with sock:
        assert head.startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        assert echo(sock, b"z" * 20000) == b"z" * 20000
        assert 1.5 <= time.monotonic() - started <= 10


def test_reset_breaks_the_tunnel(ws: Proxy) -> None:
    """A reset rule added while a tunnel is open resets that tunnel."""
    sock, head = handshake(ws)
    with sock:
        assert head.startswith(b"HTTP/1.1 101")
        assert echo(sock, b"before") == b"before"
        ws.put(rule("reset"))
        sock.settimeout(5)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(50):
                echo(sock, b"after")
                time.sleep(0.05)


def test_h2c_upgrade_is_stripped(clean: Proxy) -> None:
    """``Upgrade: h2c`` never reaches the upstream (nor HTTP2-Settings); the request is served."""
    reply = exchange(clean.port, b"GET /headers HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
                     b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__"
                     b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    seen = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert "upgrade" not in seen and "http2-settings" not in seen
    assert "connection" not in seen or "upgrade" not in seen["connection"][0].lower()


def test_connect_is_refused(clean: Proxy) -> None:
    """CONNECT is answered 405: the proxy is no tunnel to anywhere."""
    reply = exchange(clean.port, b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443"
                     b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405")
