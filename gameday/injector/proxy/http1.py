"""A small, strict HTTP/1.1 message parser for the proxy (pure: bytes in, records out).

Only what a forwarding proxy needs: the request or status line, the header lines kept as raw
bytes (so unchanged lines are forwarded without re-encoding), the body framing, keep-alive, and
the hop-by-hop headers to drop. Ambiguous framing (both ``Content-Length`` and
``Transfer-Encoding``, conflicting lengths, codings other than ``chunked``, obsolete line
folding, whitespace before the colon) is rejected: a proxy that reads a message differently
from the server behind it opens the door to request smuggling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gameday.errors import ParseError as ParseError  # re-exported: the parser's callers use it

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate",
})
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Every header line at once: a token name right before the colon (no whitespace, no folding),
# a value without bare CR or LF. One pass in C instead of one regex per line.
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*\r\n)*\r\n")
# The headers that change framing or are hop-by-hop, found in the lower-cased head.
_SPECIAL = re.compile(rb"\r\n(content-length|transfer-encoding|connection|keep-alive|"
                      rb"proxy-connection|te|trailer|upgrade|proxy-authorization|"
                      rb"proxy-authenticate):([^\r\n]*)")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_DIGITS = re.compile(rb"^[0-9]{1,18}$")
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(slots=True)
class Head:
    """A parsed request or response head, kept as its raw bytes plus what framing needs.

    ``raw`` ends with the empty line; ``cuts`` are the spans of hop-by-hop header lines (each
    with the CRLF before it). ``length`` is the body length (``None``: chunked when
    ``chunked``, else none for requests and "until the connection closes" for responses).
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
    cuts: list[tuple[int, int]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        at = self.lower.find(b"\r\n" + name + b":")
        if at < 0:
            return None
        begin = at + len(name) + 3
        return self.raw[begin:self.raw.index(b"\r\n", begin)].strip()

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


def _headers(head: Head, strict: bool = True) -> None:
    """Find framing, keep-alive and hop-by-hop lines; ``strict`` checks every line's syntax."""
    raw = head.raw
    if raw.count(b"\r\n") > MAX_HEADERS + 2:
        raise ParseError("too many header lines", 431)
    if strict and not _HEADER_LINES.fullmatch(raw, len(head.start) + 2):
        raise ParseError("malformed header line")
    length: bytes | None = None
    codings: list[bytes] | None = None
    connection: list[bytes] | None = None
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
            cuts.append(match.span())
    if codings is not None:
        if length is not None:
            raise ParseError("both Content-Length and Transfer-Encoding")
        if codings != [b"chunked"]:
            raise ParseError("unsupported Transfer-Encoding", 501)
        head.chunked = True
    elif length is not None:
        if not _DIGITS.match(length):
            raise ParseError("invalid Content-Length")
        head.length = int(length)
    if connection is not None:
        named = {token for token in connection if token not in (b"close", b"keep-alive")}
        if named:
            _cut_named(head, named)
        if b"close" in connection:
            head.keep_alive = False
        elif head.version == 10:
            head.keep_alive = b"keep-alive" in connection
    elif head.version == 10:
        head.keep_alive = False


def _cut_named(head: Head, names: set[bytes]) -> None:
    """Also drop the headers a ``Connection`` header names (they are hop-by-hop too)."""
    for name in names:
        if not _TOKEN.match(name) or name in (b"content-length", b"transfer-encoding"):
            continue
        needle = b"\r\n" + name + b":"
        at = head.lower.find(needle)
        while at >= 0:
            head.cuts.append((at, head.lower.index(b"\r\n", at + 2)))
            at = head.lower.find(needle, at + 2)
    head.cuts.sort()


def parse_request(raw: bytes) -> Head:
    """Parse a request head (``raw`` ends with the empty line)."""
    start = raw[:raw.find(b"\r\n")]
    parts = start.split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise ParseError("malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        number = 11
    elif version == b"HTTP/1.0":
        number = 10
    else:
        raise ParseError("unsupported HTTP version", 505)
    head = Head(raw=raw, lower=raw.lower(), start=start, version=number, method=method,
                target=target)
    _headers(head)
    if target[:1] != b"/":
        origin = _origin_form(target, method)
        if origin != target:
            # Absolute form (a client that takes us for a forward proxy): pass on the path.
            return parse_request(head.forward(start=b" ".join((method, origin, version))))
    return head


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
    start = raw[:raw.find(b"\r\n")]
    version, _, rest = start.partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or len(rest) < 3:
        raise ParseError("malformed status line", 502)
    head = Head(raw=raw, lower=raw.lower(), start=start,
                version=11 if version == b"HTTP/1.1" else 10, status=int(code))
    # Lenient on the upstream's lines: a line we cannot read is simply not framing, and the
    # worst case is closing that connection after the response. Requests are checked strictly.
    _headers(head, strict=False)
    if request_method == b"HEAD" or head.status in _NO_BODY_STATUS or head.status < 200:
        head.length = 0
        head.chunked = False
    return head


# Chunked-body scanner states.
_SIZE, _DATA, _CRLF, _TRAILER, _DONE = range(5)


class ChunkedScanner:
    """Finds where a chunked body ends, fed piece by piece; the bytes themselves pass on as is."""

    __slots__ = ("partial", "remaining", "state")

    def __init__(self) -> None:
        self.state = _SIZE
        self.remaining = 0
        self.partial = b""

    def feed(self, data: bytes) -> int:
        """Consume ``data``; the number of its bytes that end the body, or -1 if it goes on."""
        pos = 0
        size = len(data)
        while pos < size:
            state = self.state
            if state == _DATA:
                take = min(self.remaining, size - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state, self.remaining = _CRLF, 2
            elif state == _CRLF:
                take = min(self.remaining, size - pos)
                expected = b"\r\n"[2 - self.remaining:2 - self.remaining + take]
                if data[pos:pos + take] != expected:
                    raise ParseError("chunk not followed by CRLF")
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _SIZE
            else:
                end = data.find(b"\n", pos)
                if end < 0:
                    self.partial += data[pos:]
                    if len(self.partial) > 4096:
                        raise ParseError("chunk line too long")
                    return -1
                line = (self.partial + data[pos:end]).rstrip(b"\r")
                self.partial = b""
                pos = end + 1
                if state == _SIZE:
                    text = line.split(b";", 1)[0].strip()
                    if not _HEX.match(text):
                        raise ParseError("invalid chunk size")
                    length = int(text, 16)
                    if length:
                        self.state, self.remaining = _DATA, length
                    else:
                        self.state = _TRAILER
                elif not line:
                    self.state = _DONE
                    return pos
        return -1

    @property
    def done(self) -> bool:
        """Whether the final chunk and trailers were seen."""
        return self.state == _DONE
