"""Differential fuzzing of the proxy's request framing against h11 (issue 14, "Proof beyond").

Each generated stream (``fuzz_http1.stream``) goes on one raw socket through the real proxy
to the capturing raw upstream, and to h11 as a server. What the upstream received is framed by
h11 too, so both sides are compared as h11 reads them:

* a stream h11 accepts reaches the upstream as the same messages in the same order (method,
  target, version, header fields as (lower-cased name, value) in order, body bytes, trailer
  fields), after the proxy's documented rewrites (``fuzz_http1.forwarded``), each answered 200;
* a stream h11 refuses gets, after the answers to the complete messages before the bad one,
  a 4xx (501/505 where the RFC says so) or a close, and nothing of the bad message reaches the
  upstream;
* a message with an intended difference (``fuzz_http1.INTENDED``: h11 is more lenient) is
  refused the same way: stricter than h11 is allowed, laxer never.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, event, given, settings

from tests.injector.conftest import Proxy, RawUpstream, exchange, rule
from tests.injector.fuzz_http1 import (
    INTENDED,
    OPEN_DEFECTS,
    Framed,
    Message,
    Parsed,
    forwarded,
    frame,
    http10_keep_alive,
    stream,
)

pytestmark = pytest.mark.integration

#: How the proxy may refuse a message: 400, 431 (too large), 501 (a transfer coding it does not
#: implement, RFC 9112 §6.1), 505 (another HTTP version); or a close without an answer.
REFUSALS = {400, 431, 501, 505}


def expectation(messages: list[Message], oracle: Parsed) -> tuple[list[Framed], bool] | None:
    """The messages the proxy must forward and whether it must refuse the next one.

    None for a stream that is neither: h11 waits for more bytes and no intended difference
    explains it (the generator does not mean to make those).
    """
    count = len(oracle.messages)
    strict = next((i for i, message in enumerate(messages) if message.strict), None)
    if strict is not None and (strict < count or
                               (strict == count and oracle.end in ("error", "incomplete"))):
        return oracle.messages[:strict], True  # the proxy stops at the stricter message
    if oracle.end == "incomplete":
        return None
    return oracle.messages, oracle.end == "error"


def _sizes(raw: RawUpstream) -> dict[int, int]:
    return {int(path.stem): path.stat().st_size for path in raw.capture.glob("*.bin")}


def _received_since(raw: RawUpstream, before: dict[int, int]) -> list[bytes]:
    """What the upstream received since ``before``, per connection in the order they were
    opened (one exchange at a time: a new one opens only when the last is dropped), once
    nothing more has come for 30 ms."""
    now, quiet = _sizes(raw), 0
    while quiet < 3:
        time.sleep(0.01)
        later = _sizes(raw)
        quiet = quiet + 1 if later == now else 0
        now = later
    return [(raw.capture / f"{n}.bin").read_bytes()[before.get(n, 0):now[n]]
            for n in sorted(now) if now[n] > before.get(n, 0)]


def _statuses(reply: bytes, methods: list[bytes]) -> list[int]:
    """The status codes of the responses in ``reply``; ``methods`` of the requests they answer
    (answers to HEAD have no body)."""
    codes: list[int] = []
    pos = 0
    while pos < len(reply):
        end = reply.find(b"\r\n\r\n", pos)
        assert end > 0 and reply.startswith(b"HTTP/1.1 ", pos), f"not a response: {reply[pos:]!r}"
        codes.append(int(reply[pos + 9:pos + 12]))
        length = re.search(rb"\r\ncontent-length: *([0-9]+)", reply[pos:end].lower())
        head_only = len(codes) <= len(methods) and methods[len(codes) - 1] == b"HEAD"
        pos = end + 4 + (int(length[1]) if length and not head_only else 0)
    return codes


def check(proxy: Proxy, raw: RawUpstream, data: bytes,
          expected: tuple[list[Framed], bool]) -> None:
    """Send ``data``; the upstream gets exactly the ``expected`` messages, the client their
    200s, then (if the stream must be refused) at most one refusal."""
    messages, refused = expected
    want = [forwarded(message, raw.port) for message in messages]
    before = _sizes(raw)
    try:
        reply = exchange(proxy.port, data, timeout=5)
    except TimeoutError:
        pytest.fail(f"the proxy neither answered nor closed within 5 s: {data!r}")
    got = [frame(segment, lambda _: True) for segment in _received_since(raw, before)]
    where = f"\nstream: {data!r}\nreply: {reply[:800]!r}\nupstream: {got!r}"
    assert all(parsed.end == "ok" for parsed in got), "part of a message went upstream" + where
    sent = [message for parsed in got for message in parsed.messages]
    assert sent == want, where
    codes = _statuses(reply, [message.method for message in sent])
    assert codes[:len(want)] == [200] * len(want), where
    if refused:
        assert len(codes) <= len(want) + 1 and set(codes[len(want):]) <= REFUSALS, where
    else:
        assert len(codes) == len(want), where


#: Rules that match no generated request (no target starts with /never): the data plane then
#: takes the path with the decision core, as in a game day and in ``make bench-proxy``.
NO_MATCH = [rule("abort", status=503, match={"path_prefix": f"/never-{i}"}) for i in range(10)]


@pytest.fixture(params=[0, 10], ids=["no-rules", "ten-rules-matching-nothing"])
def rules(request: pytest.FixtureRequest, raw_proxy: tuple[Proxy, RawUpstream]) -> Iterator[int]:
    """The module's proxy with no rules, or with ten that match nothing, for one test."""
    proxy, _ = raw_proxy
    proxy.put(*NO_MATCH[:request.param])
    yield request.param
    proxy.put()


# The fixture's state (the rule set) is the same for every example: nothing to reset.
@settings(derandomize=True, max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream())
@pytest.mark.usefixtures("rules")
def test_proxy_frames_requests_as_h11_does(raw_proxy: tuple[Proxy, RawUpstream],
                                           messages: list[Message]) -> None:
    """A generated request stream is forwarded as h11 frames it, or refused where h11 is."""
    data = b"".join(message.data for message in messages)
    expected = expectation(messages, frame(data, http10_keep_alive))
    assume(expected is not None)
    assert expected is not None
    strict = {message.strict for message in messages} - {""}
    for reason in sorted(strict):
        event(f"intended difference: {reason}")
    event(f"{len(messages)} message(s), {len(expected[0])} forwarded, "
          f"{'refused' if expected[1] else 'accepted'}{' (intended)' if strict else ''}")
    check(*raw_proxy, data, expected)


# -- the intended differences, one each: h11 takes it, the proxy refuses it --------------------

_POST = b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
DIFFERENCES: dict[str, bytes] = {
    "bare-lf": b"GET /d HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    "obs-fold": b"GET /d HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
    "ctl-in-value": b"GET /d HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "chunk-size-ows": _POST + b"5 \r\nhello\r\n0\r\n\r\n",
    "chunk-size-digits": _POST + b"00000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk-ext": _POST + b"5; a = b\r\nhello\r\n0\r\n\r\n",
    "framing-trailer": _POST + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
    "te-and-cl": _POST.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n") +
                 b"5\r\nhello\r\n0\r\n\r\n",
    "te-http10": _POST.replace(b"HTTP/1.1", b"HTTP/1.0") + b"5\r\nhello\r\n0\r\n\r\n",
    "cl-list": b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nok",
    "cl-digits": b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0000000000000000002\r\n\r\nok",
    "version": b"GET /d HTTP/1.2\r\nHost: x\r\n\r\n",
    "target-form": b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
}


def test_every_intended_difference_has_a_case() -> None:
    """The cases below cover exactly the documented list of intended differences."""
    assert set(DIFFERENCES) == set(INTENDED)


@pytest.mark.parametrize("name", DIFFERENCES)
def test_intended_difference_is_refused_though_h11_takes_it(
        raw_proxy: tuple[Proxy, RawUpstream], name: str) -> None:
    """h11 frames the message whole; the proxy refuses it and forwards none of it."""
    data = DIFFERENCES[name]
    oracle = frame(data, http10_keep_alive)
    assert len(oracle.messages) == 1 and oracle.end in ("ok", "closed"), oracle  # h11 takes it
    check(*raw_proxy, data, ([], True))


# -- defects this fuzzing found: fixed, and kept as regressions (open ones: OPEN_DEFECTS) --

DEFECTS = {
    # parse_request re-parses an absolute-form head after cutting its hop-by-hop lines, so the
    # Connection header was gone when keep-alive was decided: "close" was forgotten and the next
    # pipelined request forwarded (h11, and the proxy for an origin-form target, stop).
    "absolute-form-connection": b"GET http://x/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"\r\nGET /after-close HTTP/1.1\r\nHost: x\r\n\r\n",
    # The same cause: HTTP/1.0 keep-alive was forgotten, the second request not served.
    "absolute-form-connection-http10": b"GET http://x/a HTTP/1.0\r\nConnection: keep-alive\r\n"
                                       b"\r\nGET /b HTTP/1.0\r\n\r\n",
    # _TARGET and _REQUEST_HEAD allow obs-text (0x80-0xFF) in the target; h11 and llhttp strict
    # refuse it (RFC 3986 has no raw non-ASCII byte): the proxy forwarded it.
    "obs-text-target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(
        strict=True, raises=AssertionError, reason=f"open defect: {name}"))
    if name.removesuffix("-http10") in OPEN_DEFECTS else name for name in DEFECTS])
def test_known_defect(raw_proxy: tuple[Proxy, RawUpstream], name: str) -> None:
    """A stream the fuzzing showed the proxy frames unlike h11 is framed as h11 frames it."""
    data = DEFECTS[name]
    expected = expectation([Message(data)], frame(data, http10_keep_alive))
    assert expected is not None
    check(*raw_proxy, data, expected)
