"""A small, strict HTTP/1.1 message parser for the proxy (pure: bytes in, records out).

Only what a forwarding proxy needs: the request or status line, the header lines kept as raw
bytes (so unchanged lines are forwarded without re-encoding), the body framing, keep-alive, and
the hop-by-hop headers to drop. Ambiguous framing (both ``Content-Length`` and
``Transfer-Encoding``, conflicting lengths, codings other than ``chunked``, obsolete line
folding, whitespace before the colon, bare CR or LF, control characters in the target or in a
value) is rejected: a proxy that reads a message differently from the server behind it opens
the door to request smuggling. Responses are held to the same grammar (a malformed one is
answered 502). Chunked bodies are checked by :mod:`~gameday.injector.proxy.chunked`.

Limits: a head (request or response) is at most ``MAX_HEAD`` bytes; a request at most
``MAX_HEADERS`` header lines (431 beyond), a response at most ``MAX_RESPONSE_HEADERS``
(502 beyond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gameday.errors import ParseError as ParseError  # re-exported: the parser's callers use it
from gameday.injector.proxy.chunked import ChunkedScanner as ChunkedScanner  # re-exported

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
#: Upstreams send more header lines than clients (cookies, tracing, CSP): pass up to this many.
MAX_RESPONSE_HEADERS = 1000
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate",
})
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Every header line at once: a token name right before the colon (no whitespace, no folding),
# a value of visible characters, spaces and tabs only (no CR, LF, NUL or other control
# character). One pass in C instead of one regex per line.
_FIELDS = rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n"
# A request target: visible ASCII only (no space, control character, DEL or raw non-ASCII byte:
# RFC 3986 wants those percent-encoded, and h11 and llhttp's strict mode refuse them).
_TARGET = re.compile(rb"[\x21-\x7e]+")
_STATUS_LINE = rb"(HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?)\r\n"
# A whole well-formed head in one pass: start line, then every header line. What it refuses
# is looked at again, line by line, only to say why.
_REQUEST_HEAD = re.compile(rb"(([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) "
                           rb"HTTP/1\.([01]))\r\n" + _FIELDS)
_RESPONSE_HEAD = re.compile(_STATUS_LINE + _FIELDS)
# The headers that change framing or are hop-by-hop, found in the lower-cased head.
_SPECIAL = re.compile(rb"\r\n(content-length|transfer-encoding|connection|keep-alive|"
                      rb"proxy-connection|te|trailer|upgrade|proxy-authorization|"
                      rb"proxy-authenticate):([^\r\n]*)")
_NO_BODY_STATUS = frozenset({204, 304})
# Headers a Connection header may not make hop-by-hop: framing, and where the request goes.
_NEVER_CUT = frozenset({b"content-length", b"transfer-encoding", b"host"})


@dataclass(slots=True)
class Head:
    """A parsed request or response head, kept as its raw bytes plus what framing needs.

    ``raw`` ends with the empty line; ``cuts`` are the spans of hop-by-hop header lines (each
    with the CRLF before it). ``length`` is the body length (``None``: chunked when
    ``chunked``, else none for requests and "until the connection closes" for responses).
    ``websocket``: the message asks for (or, a 101, agrees to) a switch to WebSocket; every
    other upgrade (``h2c`` above all) is simply stripped as hop-by-hop.
    """

    raw: bytes
    lower: bytes
    start: bytes
    version: int = 11
    method: bytes = b""
    target: bytes = b""
    status: int = 0
    length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    websocket: bool = False
    cuts: list[tuple[int, int]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        at = self.lower.find(b"\r\n" + name + b":")
        if at < 0:
            return None
        begin = at + len(name) + 3
        return self.raw[begin:self.raw.index(b"\r\n", begin)].strip()

    def drop(self, name: bytes) -> None:
        """Leave every ``name`` line (lower case) out of what ``forward`` sends on."""
        needle = b"\r\n" + name + b":"
        at = self.lower.find(needle)
        while at >= 0:
            end = self.lower.index(b"\r\n", at + 2)
            self.cuts.append((at, end))
            at = self.lower.find(needle, end)
        self.cuts.sort()

    def headers(self) -> dict[str, str]:
        """Headers as a dict with lower-case names (the last value of a repeated name wins)."""
        found = {}
        for line in self.raw[len(self.start) + 2:-4].split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name:
                found[name.lower().decode("latin-1")] = value.strip().decode("latin-1")
        return found

    def forward(self, extra: list[bytes] | None = None, start: bytes | None = None) -> bytes:
        """The head to send on: hop-by-hop lines dropped, ``extra`` lines added."""
        raw = self.raw
        if not self.cuts and not extra and start is None:
            return raw
        parts = [start if start is not None else self.start]
        pos = len(self.start)
        for begin, end in self.cuts:
            parts.append(raw[pos:begin])
            pos = end
        parts.append(raw[pos:-4])
        for line in extra or ():
            parts.append(b"\r\n" + line)
        parts.append(b"\r\n\r\n")
        return b"".join(parts)


def _headers(head: Head, max_lines: int, too_many: int) -> None:
    """Find framing, keep-alive and hop-by-hop lines (their syntax is checked already)."""
    if head.raw.count(b"\r\n") > max_lines + 2:
        raise ParseError("too many header lines", too_many)
    length: bytes | None = None
    codings: list[bytes] | None = None
    connection: list[bytes] | None = None
    upgrade = b""
    cuts = head.cuts
    for match in _SPECIAL.finditer(head.lower):
        name = match[1]
        if name == b"content-length":
            value = match[2].strip()
            if length is not None and value != length:
                raise ParseError("conflicting Content-Length values")
            length = value
        elif name == b"transfer-encoding":
            codings = (codings or []) + [part.strip() for part in match[2].split(b",")]
        else:
            if name == b"connection":
                connection = (connection or []) + [part.strip() for part in match[2].split(b",")]
            elif name == b"upgrade":
                upgrade += b"," + match[2]
            cuts.append(match.span())
    if codings is not None:
        if head.version == 10:
            # HTTP/1.0 has no chunked coding: a 1.0 peer would read the body differently.
            raise ParseError("Transfer-Encoding in an HTTP/1.0 message")
        if length is not None:
            raise ParseError("both Content-Length and Transfer-Encoding")
        if codings != [b"chunked"]:
            raise ParseError("unsupported Transfer-Encoding", 501)
        head.chunked = True
    elif length is not None:
        if not length.isdigit() or len(length) > 18:
            raise ParseError("invalid Content-Length")
        head.length = int(length)
    if connection is not None:
        named = {token for token in connection if token not in (b"close", b"keep-alive")}
        if named:
            _cut_named(head, named)
        if upgrade and b"upgrade" in connection:
            head.websocket = b"websocket" in (part.strip() for part in upgrade.split(b","))
        if b"close" in connection:
            head.keep_alive = False
        elif head.version == 10:
            head.keep_alive = b"keep-alive" in connection
    elif head.version == 10:
        head.keep_alive = False


def _cut_named(head: Head, names: set[bytes]) -> None:
    """Also drop the headers a ``Connection`` header names (they are hop-by-hop too)."""
    for name in names:
        if not _TOKEN.fullmatch(name) or name in _NEVER_CUT:
            continue
        needle = b"\r\n" + name + b":"
        at = head.lower.find(needle)
        while at >= 0:
            head.cuts.append((at, head.lower.index(b"\r\n", at + 2)))
            at = head.lower.find(needle, at + 2)
    head.cuts.sort()


def parse_request(raw: bytes) -> Head:
    """Parse a request head (``raw`` ends with the empty line)."""
    if len(raw) > MAX_HEAD:
        raise ParseError("request head too large", 431)
    match = _REQUEST_HEAD.fullmatch(raw)
    if match is None:
        raise _request_problem(raw)
    start, method, target = match[1], match[2], match[3]
    if method == b"CONNECT":
        raise ParseError("CONNECT is not supported: this proxy tunnels to its upstream only", 405)
    number = 11 if match[4] == b"1" else 10
    head = Head(raw=raw, lower=raw.lower(), start=start, version=number, method=method,
                target=target)
    _headers(head, MAX_HEADERS, 431)
    if head.websocket and (method != b"GET" or number != 11 or head.chunked or head.length):
        head.websocket = False  # not a WebSocket handshake (RFC 6455 §4.1): just strip it
    hosts = head.lower.count(b"\r\nhost:")
    if hosts > 1 or (not hosts and number == 11):
        raise ParseError("more than one Host header" if hosts else
                         "an HTTP/1.1 request needs a Host header")
    if target[:1] != b"/":
        origin = _origin_form(target, method)
        if origin != target:
            # Absolute form (a client that takes us for a forward proxy): pass on the path.
            version = start[start.rindex(b" ") + 1:]
            rewritten = parse_request(head.forward(start=b" ".join((method, origin, version))))
            # The hop-by-hop lines were cut on the way: what they said stays this request's.
            rewritten.keep_alive, rewritten.websocket = head.keep_alive, head.websocket
            return rewritten
    return head


def _request_problem(raw: bytes) -> ParseError:
    """Why ``raw`` is not a well-formed request head (it failed the one-pass check)."""
    start = raw[:raw.find(b"\r\n")]
    parts = start.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        return ParseError("malformed request line")
    if not _TARGET.fullmatch(parts[1]):
        return ParseError("malformed request target")
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return ParseError("unsupported HTTP version", 505)
    return ParseError("malformed header line")


def _origin_form(target: bytes, method: bytes) -> bytes:
    if target == b"*" and method == b"OPTIONS":
        return target
    scheme, sep, rest = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        slash = rest.find(b"/")
        return rest[slash:] if slash >= 0 else b"/"
    raise ParseError("malformed request target")


def parse_response(raw: bytes, request_method: bytes) -> Head:
    """Parse a response head (``raw`` ends with the empty line) to a ``request_method`` call."""
    if len(raw) > MAX_HEAD:
        raise ParseError("response head too large", 502)
    match = _RESPONSE_HEAD.fullmatch(raw)
    if match is None:
        status_line = re.match(_STATUS_LINE, raw)
        raise ParseError("malformed header line" if status_line else "malformed status line", 502)
    head = Head(raw=raw, lower=raw.lower(), start=match[1],
                version=11 if match[2] == b"1" else 10, status=int(match[3]))
    # As strict as for requests: a response we read differently from the client would let
    # the upstream smuggle a second response onto the client's connection.
    try:
        _headers(head, MAX_RESPONSE_HEADERS, 502)
    except ParseError as exc:
        raise ParseError(str(exc), 502) from exc  # the upstream's fault, not the client's
    if request_method == b"HEAD" or head.status in _NO_BODY_STATUS or head.status < 200:
        head.length = 0
        head.chunked = False
    return head
