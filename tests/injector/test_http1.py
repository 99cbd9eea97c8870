"""The proxy's HTTP/1.1 parser: framing, hop-by-hop headers, rejection of ambiguous messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameday.injector.proxy.http1 import ChunkedScanner, ParseError, parse_request, parse_response


def test_plain_request_is_forwarded_byte_for_byte() -> None:
    """A request without hop-by-hop headers goes on exactly as it came."""
    raw = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
    head = parse_request(raw)
    assert (head.method, head.target, head.length, head.chunked) == (b"GET", b"/a?b=1", None,
                                                                     False)
    assert head.keep_alive
    assert head.forward() is raw


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    """Connection, Keep-Alive, TE, Upgrade and headers Connection names are removed."""
    raw = (b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nKeep-Alive: 5\r\n"
           b"X-Secret: s\r\nTE: trailers\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\n")
    head = parse_request(raw)
    assert not head.keep_alive and head.length == 3
    assert head.forward([b"x-chaos-fault: latency"]) == (
        b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nx-chaos-fault: latency\r\n\r\n")


def test_absolute_form_becomes_origin_form() -> None:
    """A request to http://host/path is passed on as /path."""
    head = parse_request(b"GET http://example.test/q?x HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert head.target == b"/q?x"
    assert head.forward().startswith(b"GET /q?x HTTP/1.1\r\n")


def test_http10_keep_alive_rules() -> None:
    """HTTP/1.0 closes unless it asks for keep-alive."""
    assert not parse_request(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad\x00Name: 1\r\n\r\n",
])
def test_ambiguous_or_malformed_requests_are_rejected(raw: bytes) -> None:
    """Messages a server might read differently (smuggling) are refused."""
    with pytest.raises(ParseError):
        parse_request(raw)


def test_response_framing() -> None:
    """Responses: length, chunked, until close, and no body for HEAD and 204/304."""
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", b"GET").length == 4
    assert parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                          b"GET").chunked
    until_close = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", b"GET")
    assert until_close.length is None and not until_close.keep_alive
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", b"HEAD").length == 0
    assert parse_response(b"HTTP/1.1 304 Not Modified\r\n\r\n", b"GET").length == 0
    with pytest.raises(ParseError):
        parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", b"GET")


BODY = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n"


@given(cuts=st.lists(st.integers(1, len(BODY) - 1), unique=True, max_size=8))
def test_chunked_scanner_finds_the_end_across_any_split(cuts: list[int]) -> None:
    """However the body is split into reads, the end is found at the same byte."""
    scanner = ChunkedScanner()
    bounds = [0, *sorted(cuts), len(BODY)]
    ends = []
    for start, stop in itertools.pairwise(bounds):
        ends.append(scanner.feed(BODY[start:stop]))
    assert ends[-1] == bounds[-1] - bounds[-2]
    assert all(result == -1 for result in ends[:-1])
    assert scanner.done


def test_chunked_scanner_reports_bytes_of_the_next_message() -> None:
    """Bytes after the last chunk are not part of the body."""
    scanner = ChunkedScanner()
    assert scanner.feed(b"0\r\n\r\nGET / HTTP/1.1") == 5


@pytest.mark.parametrize("body", [b"zz\r\n", b"5\r\nhelloXX", b"+5\r\nhello\r\n"])
def test_chunked_scanner_rejects_bad_framing(body: bytes) -> None:
    """Invalid sizes or a missing CRLF after a chunk are parse errors."""
    with pytest.raises(ParseError):
        ChunkedScanner().feed(body)
