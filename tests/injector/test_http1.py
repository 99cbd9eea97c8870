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


BODY = b'5;ext=1\r\nhello\r\n10;q="a b"\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n'


@given(cuts=st.lists(st.integers(1, len(BODY) - 1), unique=True, max_size=8))
def test_chunked_scanner_passes_the_body_across_any_split(cuts: list[int]) -> None:
    """However the body is split into reads, exactly its bytes go on and the end is found."""
    scanner = ChunkedScanner()
    bounds = [0, *sorted(cuts), len(BODY)]
    passed = b""
    for start, stop in itertools.pairwise(bounds):
        assert not scanner.done
        passed += scanner.feed(BODY[start:stop])
    assert scanner.done
    assert passed == BODY
    assert scanner.rest == b""


def test_chunked_scanner_reports_bytes_of_the_next_message() -> None:
    """Bytes after the last chunk are not part of the body: they are left in ``rest``."""
    scanner = ChunkedScanner()
    assert scanner.feed(b"0\r\n\r\nGET / HTTP/1.1") == b"0\r\n\r\n"
    assert scanner.done
    assert scanner.rest == b"GET / HTTP/1.1"


# (what may go on, the malformed rest): the valid part may pass, nothing of the rest.
BAD_CHUNKED = [
    (b"", b"zz\r\n"), (b"5\r\nhello", b"XX"), (b"", b"+5\r\nhello\r\n"),
    (b"", b"5\nhello\r\n"), (b"", b"5;a=b\nc\r\n"), (b"", b"5 \r\n"), (b"", b" 5\r\n"),
    (b"", b"5\r\r\n"), (b"", b"5;\r\n"), (b"", b"5;a=\x00\r\n"), (b"", b'5;a="x\r\n'),
    (b"", b"10000000000000005\r\n"), (b"", b"8000000000000000\r\n"),
    (b"", b"5;" + b"e" * 5000 + b"\r\n"),
    (b"5\r\nhello\r\n0\r\n", b"X-T: a\x00b\r\n\r\n"), (b"0\r\n", b"Content-Length: 5\r\n\r\n"),
    (b"0\r\n", b"Transfer-Encoding: chunked\r\n\r\n"), (b"0\r\n", b"Host: h\r\n\r\n"),
    (b"0\r\n", b"X-T: t\n\r\n"), (b"0\r\n", b"\n"), (b"0\r\n", b"X-T : t\r\n\r\n"),
    (b"0\r\n", b" folded\r\n\r\n"),
]


@pytest.mark.parametrize(("good", "bad"), BAD_CHUNKED)
@given(cut=st.integers(0, 64))
def test_chunked_scanner_never_passes_a_bad_line(good: bytes, bad: bytes, cut: int) -> None:
    """Malformed framing is a parse error, in one read or two; the bad line never goes on."""
    scanner = ChunkedScanner()
    body = good + bad
    cut = min(cut, len(body))
    passed = b""
    with pytest.raises(ParseError):
        for piece in (body[:cut], body[cut:]):
            passed += scanner.feed(piece)
    assert good.startswith(passed)


def test_chunked_scanner_limits_lines_in_one_read() -> None:
    """A 100 KB extension or trailer section is refused even when it arrives in one read."""
    with pytest.raises(ParseError):
        ChunkedScanner().feed(b"5;" + b"e" * 100_000 + b"\r\nhello\r\n0\r\n\r\n")
    with pytest.raises(ParseError) as trailers:
        ChunkedScanner().feed(b"0\r\n" + b"X-T: t\r\n" * 3000 + b"\r\n")
    assert trailers.value.status == 431


@pytest.mark.parametrize("target", [b"/a\tb", b"/a\x00b", b"/a\rb", b"/a\nb", b"/a\x7fb"])
def test_control_characters_in_the_target_are_refused(target: bytes) -> None:
    """A request target may not hold control characters (a server could split the line)."""
    with pytest.raises(ParseError):
        parse_request(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")


def test_head_limit_holds_for_a_head_in_one_piece() -> None:
    """A head over 64 KiB is refused with 431 however it arrived."""
    with pytest.raises(ParseError) as too_big:
        parse_request(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
    assert too_big.value.status == 431


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 200OK\r\n\r\n", b"HTTP/1.1 099 X\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
])
def test_malformed_responses_are_refused(raw: bytes) -> None:
    """Responses are held to the same grammar as requests (answered 502 by the proxy)."""
    with pytest.raises(ParseError) as bad:
        parse_response(raw, b"GET")
    assert bad.value.status == 502


def test_status_line_without_a_reason_is_read() -> None:
    """``HTTP/1.1 204`` (no reason phrase) is a valid status line."""
    assert parse_response(b"HTTP/1.1 204\r\n\r\n", b"GET").status == 204


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_host_count_and_http10_transfer_encoding(raw: bytes) -> None:
    """HTTP/1.1 needs one Host, no request two; HTTP/1.0 may not use Transfer-Encoding."""
    with pytest.raises(ParseError) as bad:
        parse_request(raw)
    assert bad.value.status == 400


def test_connection_cannot_make_host_or_framing_hop_by_hop() -> None:
    """Host, Content-Length and Transfer-Encoding survive a Connection header naming them."""
    raw = (b"POST / HTTP/1.1\r\nHost: h\r\nConnection: host, content-length, x-a\r\n"
           b"X-A: 1\r\nContent-Length: 0\r\n\r\n")
    assert parse_request(raw).forward() == (b"POST / HTTP/1.1\r\nHost: h\r\n"
                                            b"Content-Length: 0\r\n\r\n")


def test_http10_response_with_transfer_encoding_is_refused() -> None:
    """A 1.0 response with Transfer-Encoding has faulty framing: 502."""
    with pytest.raises(ParseError) as bad:
        parse_response(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET")
    assert bad.value.status == 502
