"""Strict framing at the real proxy: malformed requests are refused, never forwarded; a malformed
upstream response becomes a 502, never a pass-through.

Requests go through raw sockets to a proxy in front of the raw upstream, whose capture shows
what the proxy forwarded; each request carries a unique marker in its target to find it there.
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from tests.injector.conftest import Proxy, RawUpstream, exchange, upstream_count
from tests.injector.raw_upstream import CANNED

pytestmark = pytest.mark.integration

_ids = itertools.count()


def _marker() -> bytes:
    return b"m%d-%d" % (time.monotonic_ns(), next(_ids))


def _received(raw: RawUpstream, marker: bytes) -> bytes:
    """What the upstream got on the connection that carried ``marker`` (after it settled)."""
    time.sleep(0.1)
    return raw.received(marker)


def _status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply[9:12])


# -- chunked request bodies -----------------------------------------------------------------------

# (valid part, malformed part): the valid part may reach the upstream, the rest never.
BAD_CHUNKED = {
    "bare-lf-after-size": (b"", b"5\nhello\r\n0\r\n\r\n"),
    "lf-in-extension": (b"", b"5;a=b\nc\r\nhello\r\n0\r\n\r\n"),
    "space-after-size": (b"", b"5 \r\nhello\r\n0\r\n\r\n"),
    "space-before-size": (b"", b" 5\r\nhello\r\n0\r\n\r\n"),
    "cr-cr-lf": (b"", b"5\r\r\nhello\r\n0\r\n\r\n"),
    "nul-in-extension": (b"", b"5;a=\x00\r\nhello\r\n0\r\n\r\n"),
    "overflows-64-bit": (b"", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    "over-signed-64-bit": (b"", b"fffffffffffffffa\r\nhello\r\n0\r\n\r\n"),
    "100k-extension": (b"", b"5;" + b"e" * 100_000 + b"\r\nhello\r\n0\r\n\r\n"),
    "nul-in-trailer": (b"5\r\nhello\r\n", b"0\r\nX-T: a\x00b\r\n\r\n"),
    "length-in-trailer": (b"5\r\nhello\r\n", b"0\r\nContent-Length: 5\r\n\r\n"),
    "bare-lf-in-trailer": (b"5\r\nhello\r\n", b"0\r\nX-T: t\n\r\n"),
    "bare-lf-ends-trailers": (b"5\r\nhello\r\n", b"0\r\n\n"),
    "no-crlf-after-data": (b"", b"5\r\nhelloXX0\r\n\r\n"),
}


@pytest.mark.parametrize("case", BAD_CHUNKED)
def test_malformed_chunked_request_is_refused_unforwarded(raw_proxy: tuple[Proxy, RawUpstream],
                                                          case: str) -> None:
    """Each malformed chunk-size or trailer line is a 400; its bytes never reach the upstream."""
    proxy, raw = raw_proxy
    good, bad = BAD_CHUNKED[case]
    marker = _marker()
    reply = exchange(proxy.port, b"POST /stall?" + marker + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + good + bad)
    assert _status(reply) == 400
    assert bad[:-1] not in _received(raw, marker)


def test_malformed_chunk_after_good_ones_stops_at_the_good_ones(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """A bad chunk line arriving after good chunks: the upstream sees the good bytes only."""
    proxy, raw = raw_proxy
    marker = _marker()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /stall?" + marker + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.3)
        sock.sendall(b"3 \r\nbad\r\n0\r\n\r\n")
        reply = sock.recv(65536)
    assert _status(reply) == 400
    received = _received(raw, marker)
    assert received.endswith(b"\r\n\r\n5\r\nhello\r\n")


def test_well_formed_chunked_request_passes_with_extensions_and_trailers(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """Extensions (token and quoted) and trailers that follow the grammar go through as sent."""
    proxy, raw = raw_proxy
    marker = _marker()
    body = b'5;a=b;q="x y"\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n'
    reply = exchange(proxy.port, b"POST /ok?" + marker + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert _status(reply) == 200
    assert _received(raw, marker).endswith(body)


# -- request heads --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [b"/a\tb", b"/a\x00b", b"/a\rb", b"/a\nb", b"/a\x7fb",
                                    b"/a\x0bb"],
                         ids=["tab", "nul", "cr", "lf", "del", "vt"])
def test_control_characters_in_the_target_are_refused(raw_proxy: tuple[Proxy, RawUpstream],
                                                      target: bytes) -> None:
    """A target holding TAB, NUL, CR, LF or another control character is a 400, not forwarded."""
    proxy, raw = raw_proxy
    marker = _marker()
    reply = exchange(proxy.port, b"GET /" + marker + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(reply) == 400
    assert _received(raw, marker) == b""


def test_head_over_the_limit_in_one_read_is_refused(raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """A 70 KB head arriving at once is a 431 like one arriving in pieces, and not forwarded."""
    proxy, raw = raw_proxy
    marker = _marker()
    reply = exchange(proxy.port, b"GET /" + marker + b" HTTP/1.1\r\nHost: x\r\nX-Big: " +
                     b"a" * 70_000 + b"\r\n\r\n")
    assert _status(reply) == 431
    assert _received(raw, marker) == b""


@pytest.mark.parametrize("line", [b"X-A: a\x00b", b"X-A: a\x01b", b"X-A: a\x7fb"],
                         ids=["nul", "soh", "del"])
def test_control_characters_in_a_header_value_are_refused(
        raw_proxy: tuple[Proxy, RawUpstream], line: bytes) -> None:
    """A header value with NUL or another control character (TAB aside) is a 400."""
    proxy, raw = raw_proxy
    marker = _marker()
    reply = exchange(proxy.port, b"GET /" + marker + b" HTTP/1.1\r\nHost: x\r\n" + line +
                     b"\r\n\r\n")
    assert _status(reply) == 400
    assert _received(raw, marker) == b""


# -- upstream responses ---------------------------------------------------------------------------

MALFORMED_RESPONSES = list(CANNED)


@pytest.mark.parametrize("name", MALFORMED_RESPONSES)
def test_malformed_upstream_response_becomes_502(raw_proxy: tuple[Proxy, RawUpstream],
                                                 name: str) -> None:
    """A response the strict parser refuses is answered 502; none of its bytes pass."""
    proxy, _ = raw_proxy
    reply = exchange(proxy.port, b"GET /canned/" + name.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(reply) == 502
    assert b"upstream" in reply
    assert CANNED[name][:40] not in reply


# -- Host and versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("head", [
    pytest.param(b"GET /hello HTTP/1.1\r\n\r\n", id="no-host"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
    pytest.param(b"GET http://a/hello HTTP/1.1\r\n\r\n", id="absolute-form-no-host"),
    pytest.param(b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 id="chunked-http10"),
    pytest.param(b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\nTransfer-Encoding: chunked"
                 b"\r\n\r\nok", id="te-and-length-http10"),
])
def test_requests_without_one_host_or_with_te_in_http10_are_refused(clean: Proxy,
                                                                     head: bytes) -> None:
    """HTTP/1.1 needs exactly one Host; HTTP/1.0 may not use Transfer-Encoding: both are 400."""
    before = upstream_count(clean)
    assert _status(exchange(clean.port, head)) == 400
    assert upstream_count(clean) == before


def test_http10_without_host_gets_the_upstream_host(clean: Proxy) -> None:
    """An HTTP/1.0 request may leave Host out; the proxy adds the upstream's."""
    reply = exchange(clean.port, b"GET /headers HTTP/1.0\r\n\r\n")
    assert _status(reply) == 200
    assert b'"host": ["127.0.0.1:' in reply


def test_connection_naming_host_does_not_strip_it(clean: Proxy) -> None:
    """``Connection: host`` does not make Host hop-by-hop: the upstream still gets it."""
    reply = exchange(clean.port, b"GET /headers HTTP/1.1\r\nHost: example.test\r\n"
                     b"Connection: host, x-drop\r\nX-Drop: 1\r\n\r\n")
    assert _status(reply) == 200
    assert b'"host": ["example.test"]' in reply
    assert b"x-drop" not in reply


def test_upstream_response_with_many_header_lines_is_passed_on(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """A response with 150 header lines comes through whole (the limit is 1000)."""
    proxy, _ = raw_proxy
    reply = exchange(proxy.port, b"GET /headers/150 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(reply) == 200
    assert all(b"x-h-%d: %d\r\n" % (i, i) in reply for i in range(150))
    assert reply.endswith(b"\r\n\r\nok")


def test_upstream_response_over_the_header_line_limit_becomes_502(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """A response with more than 1000 header lines is a 502."""
    proxy, _ = raw_proxy
    reply = exchange(proxy.port, b"GET /headers/1001 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(reply) == 502


def test_the_proxys_own_answer_to_head_has_no_body(raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """An abort answering a HEAD sends the head alone, so the next pipelined answer is read
    as the next response, not after a stray JSON body."""
    proxy, _raw = raw_proxy
    proxy.put({"fault": {"kind": "abort", "status": 503, "match": {"path_prefix": "/gone"}},
               "labels": {"run": "head", "scenario": "s", "environment": "e", "step": 1},
               "ttl": 30})
    try:
        answer = exchange(proxy.port, b"HEAD /gone HTTP/1.1\r\nHost: a\r\n\r\n"
                                      b"GET /gone HTTP/1.1\r\nHost: a\r\n\r\n")
    finally:
        proxy.put()
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 503")
    length = int(next(line.split(b":")[1] for line in first.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    assert rest.startswith(b"HTTP/1.1 503"), rest[:80]  # no body between the two heads
    _second_head, _, body = rest.partition(b"\r\n\r\n")
    assert len(body) == length and body.startswith(b"{")
