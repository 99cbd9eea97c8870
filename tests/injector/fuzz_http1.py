"""The oracle and the request streams for the differential fuzzing in ``test_proxy_fuzz.py``.

The oracle is h11 as a server: it frames a byte stream into messages (method, target, version,
header fields, body bytes, trailer fields) or refuses it. The streams are one to three
pipelined requests, most well-formed (with odd but valid forms: OWS and tabs, duplicate
headers, obs-text, leading zeros, chunk extensions, trailers, absolute-form targets, HTTP/1.0),
some with one defect each. A message built with a form h11 accepts and the proxy refuses by
design carries the reason in ``Message.strict`` (the intended differences, ``INTENDED``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import h11
from hypothesis import strategies as st

# -- the intended differences: forms h11 accepts and the proxy refuses (stricter, never laxer) --

BARE_LF = "bare-lf"
OBS_FOLD = "obs-fold"
CTL = "ctl-in-value"
SIZE_OWS = "chunk-size-ows"
SIZE_DIGITS = "chunk-size-digits"
CHUNK_EXT = "chunk-ext"
TRAILER_FRAMING = "framing-trailer"
TE_AND_CL = "te-and-cl"
TE_HTTP10 = "te-http10"
CL_LIST = "cl-list"
CL_DIGITS = "cl-digits"
VERSION = "version"
TARGET_FORM = "target-form"

INTENDED: dict[str, str] = {
    BARE_LF: "a line of the head or the trailers ends in a bare LF: h11 reads it, llhttp strict "
             "does not (RFC 9112 §2.2 lets a recipient refuse it)",
    OBS_FOLD: "obs-fold: h11 unfolds it, RFC 9112 §5.2 lets a server refuse it with 400 instead",
    CTL: "a control character other than HTAB in a field value: h11 takes every byte but NUL "
         "and whitespace; RFC 9110 §5.5 allows VCHAR, obs-text, SP and HTAB only",
    SIZE_OWS: "whitespace after the chunk size (`5 \\r\\n`): h11 is lenient, RFC 9112 §7.1 and "
              "llhttp strict are not (issue 14, item 4)",
    SIZE_DIGITS: "a chunk size of more than 16 hex digits or of 2^63 and more: h11 takes 20 "
                 "digits; the proxy refuses what a signed 64-bit parser behind it would wrap",
    CHUNK_EXT: "a chunk extension outside `;name[=token|quoted-string]` (spaces, empty name, "
               "control characters): h11 skips anything after `;`",
    TRAILER_FRAMING: "Content-Length, Transfer-Encoding or Host in the trailers: h11 keeps them, "
                     "the proxy refuses what could reframe or reroute the message downstream",
    TE_AND_CL: "Transfer-Encoding and Content-Length together: h11 lets chunked win (RFC 9112 "
               "§6.3 allows it), the proxy refuses, as llhttp strict does (request smuggling)",
    TE_HTTP10: "Transfer-Encoding in an HTTP/1.0 request: h11 reads it chunked, RFC 9112 §6.1 "
               "says the framing is faulty",
    CL_LIST: "`Content-Length: 5, 5`: h11 collapses the list (RFC 9110 §8.6 allows it), the "
             "proxy and llhttp refuse anything but digits",
    CL_DIGITS: "a Content-Length of 19 or 20 digits (leading zeros count): h11 takes 20, the "
               "proxy 18",
    VERSION: "HTTP/x.y other than 1.0 and 1.1: h11 takes any digit.digit, the proxy answers 505",
    TARGET_FORM: "a target other than origin-form, http(s) absolute-form or `OPTIONS *` (`*`, "
                 "authority-form, other schemes, a relative path): h11 takes any VCHAR run, the "
                 "proxy forwards a path to its one upstream",
}

#: Proxy defects found by this fuzzing and not fixed yet: the generator steers clear of them
#: (each is pinned, with its bytes, by ``test_known_defect``). Remove a name once it is fixed.
#: Those it found so far (absolute-form-connection, obs-text-target) are fixed.
OPEN_DEFECTS: frozenset[str] = frozenset()

# -- the oracle ---------------------------------------------------------------------------------


@dataclass
class Framed:
    """One message as h11 frames it (names lower-cased, values without OWS)."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Parsed:
    """A stream as h11 frames it: its complete messages and how it ended.

    ``end``: ``ok`` (every byte is in a message), ``closed`` (a message ended the connection;
    what follows is not read), ``error`` (h11 refused the next message), ``incomplete`` (h11
    waits for more bytes).
    """

    messages: list[Framed]
    end: str
    error: str = ""


def frame(data: bytes, keep_going: Callable[[Framed], bool]) -> Parsed:
    """Frame ``data`` with h11; after a message h11 closes on, go on if ``keep_going(it)``."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    messages: list[Framed] = []
    current = Framed(b"", b"", b"", [])
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return Parsed(messages, "error", str(exc))
        if event is h11.NEED_DATA:
            idle = conn.their_state is h11.IDLE and not conn.trailing_data[0]
            return Parsed(messages, "ok" if idle else "incomplete")
        if isinstance(event, h11.Request):
            current = Framed(event.method, event.target, event.http_version, list(event.headers))
        elif isinstance(event, h11.Data):
            current.body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            current.trailers = list(event.headers)
            messages.append(current)
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is not h11.MUST_CLOSE:
                conn.start_next_cycle()
                continue
            rest = conn.trailing_data[0]
            if not keep_going(current):
                return Parsed(messages, "closed")
            conn = h11.Connection(h11.SERVER)
            if rest:
                conn.receive_data(rest)  # (b"" would tell h11 the connection closed)
        else:
            raise AssertionError(f"unexpected h11 event {event!r}")


def tokens(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The ``Connection`` options of a message, lower-cased."""
    return [part.strip().lower() for name, value in headers if name == b"connection"
            for part in value.split(b",")]


def http10_keep_alive(message: Framed) -> bool:
    """Whether the proxy keeps the connection after ``message`` although h11 would not.

    h11 implements no HTTP/1.0 keep-alive; the proxy, a gateway (RFC 9110 §3.7), honours it as
    RFC 9112 §9.3 allows. The oracle goes on reading after such a message (a documented
    extension of h11, not a difference in framing).
    """
    options = tokens(message.headers)
    return message.version == b"1.0" and b"keep-alive" in options and b"close" not in options


# -- the proxy's documented rewrites (http1.py, client.py) -----------------------------------

#: ``http1.HOP_BY_HOP``: dropped on the way in, with what ``Connection`` names (but these three).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"upgrade", b"proxy-authorization", b"proxy-authenticate"})
NEVER_CUT = frozenset({b"content-length", b"transfer-encoding", b"host"})
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def forwarded(message: Framed, upstream_port: int) -> Framed:
    """``message`` as the proxy sends it on: hop-by-hop fields dropped, a missing Host added
    (the upstream's), an absolute-form target turned into its path."""
    named = {part for part in tokens(message.headers) if _TOKEN.fullmatch(part)} - NEVER_CUT
    headers = [(n, v) for n, v in message.headers if n not in HOP_BY_HOP and n not in named]
    if all(name != b"host" for name, _ in message.headers):
        headers.append((b"host", b"127.0.0.1:%d" % upstream_port))
    target = message.target
    _, sep, rest = target.partition(b"://")
    if sep and not target.startswith(b"/"):
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    return replace(message, target=target, headers=headers)


# -- request streams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """The bytes of one generated request, and why the proxy refuses it if h11 may not."""

    data: bytes
    strict: str = ""


Pick = tuple[bytes, str]  # a form, and the intended difference it is ("" for none)

_TARGETS = [b"/", b"/a/b?c=d&e=%20f", b"/~u/!$&'()*+,;=:@", b"//two//slashes", b"/q?x=1?y=/",
            b"/frag#x", b'/odd"<>\\^`{|}', b"http://example.com/abs?q=1", b"HTTP://Example.COM",
            b"https://h:8443/p"]
_ODD_TARGETS: list[Pick] = [
    (b"*", TARGET_FORM), (b"example.com:80", TARGET_FORM), (b"ftp://h/f", TARGET_FORM),
    (b"relative/path", TARGET_FORM), (b"/a\x7fb", ""), (b"/a\x01b", ""), (b"/a\tb", ""),
    (b"/caf\xc3\xa9", ""),  # obs-text: h11 refuses it (see OPEN_DEFECTS)
]
_ODD_VERSIONS: list[Pick] = [(b"HTTP/1.2", VERSION), (b"HTTP/2.0", VERSION),
                             (b"HTTP/0.9", VERSION), (b"HTTP/1.10", ""), (b"http/1.1", ""),
                             (b"HTTP/1", "")]
_NAMES = [b"X-A", b"x-a", b"Accept", b"User-Agent", b"Cookie", b"X-Empty", b"X-Forwarded-For"]
_VALUES = [b"1", b"text/html, */*;q=0.8", b"a  b\tc", b"", b'"quoted, value"', b"caf\xc3\xa9",
           b"~!@#$%^&*()[]{}"]
_OWS = [b"", b" ", b"  ", b"\t", b" \t "]
_CONNECTION: list[tuple[bytes, list[bytes]]] = [
    (b"close", []), (b"keep-alive", []), (b"x-drop", [b"X-Drop: 1"]),
    (b"close, X-Drop", [b"x-drop: 2"]), (b"Upgrade, HTTP2-Settings",
                                         [b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABk"]),
    (b"host", []), (b"TE,\tKeep-Alive", [b"TE: trailers", b"Keep-Alive: timeout=5"]),
]
_HOP = [b"Keep-Alive: timeout=5", b"TE: trailers", b"Proxy-Authorization: Basic eDp5",
        b"Proxy-Connection: keep-alive", b"Trailer: X-T"]
_BAD_LINES: list[Pick] = [
    (b"X-A: a\x01b", CTL), (b"X-A: a\x7f", CTL), (b"X-A: \x1b[0m", CTL), (b"X-A: a\x00b", ""),
    (b"X-A : 1", ""), (b"X-A\t: 1", ""), (b"X-A 1", ""), (b": 1", ""), (b"X-A: a\rb", ""),
    (b"X-A: a\x0bb", ""), (b"X A: 1", ""), (b"X-A: a\x0cb", ""),
]
_GOOD_EXT = [b"", b"", b";a", b";a=b", b';n="q v;x"', b";a=1;b", b';e="\\"x\\""']
_BAD_EXT: list[Pick] = [(b"; a=b", CHUNK_EXT), (b";a = b", CHUNK_EXT), (b";", CHUNK_EXT),
                        (b";=x", CHUNK_EXT), (b";a=\x01", CHUNK_EXT), (b";a=b c", CHUNK_EXT),
                        (b";a=\x00", CHUNK_EXT), (b";a\nb", ""), (b";a\rb", CHUNK_EXT)]
_TRAILERS = [b"X-T: v", b"x-t:  w\t", b"X-Sum: caf\xc3\xa9"]
_BAD_TRAILERS: list[Pick] = [
    (b"Content-Length: 5\r\n", TRAILER_FRAMING), (b"Host: x\r\n", TRAILER_FRAMING),
    (b"Transfer-Encoding: chunked\r\n", TRAILER_FRAMING), (b"X-T: a\r\n b\r\n", OBS_FOLD),
    (b"X-T: a\n", BARE_LF), (b"X-T: a\x01\r\n", CTL), (b"X-T: a\x00\r\n", ""),
    (b"X-T : a\r\n", ""), (b"no colon\r\n", ""), (b"\n", BARE_LF),
]
#: Where a message may go wrong (None: nowhere). Each kind is handled in ``message``.
_KINDS = [None] * 40 + ["target", "version", "request-line", "host", "line", "fold", "lf",
                        "length", "te", "size", "ext", "chunk-end", "trailer"]


def _size(draw: st.DrawFn, size: int) -> bytes:
    """A well-formed chunk size: hex in either case, maybe with leading zeros."""
    return draw(st.sampled_from([b"%x", b"%X", b"0%x", b"000%X"])) % size


@st.composite
def message(draw: st.DrawFn) -> Message:
    """One request: mostly well-formed, with at most one defect (``_KINDS``)."""
    kind = draw(st.sampled_from(_KINDS))
    why = ""
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD"]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 3 + [b"HTTP/1.0"]))
    target = draw(st.sampled_from(_TARGETS))
    if kind == "target":
        target, why = draw(st.sampled_from([
            pick for pick in _ODD_TARGETS
            if not ("obs-text-target" in OPEN_DEFECTS and max(pick[0]) >= 0x80)]))
        if target == b"*" and draw(st.booleans()):
            method, why = b"OPTIONS", ""
    elif kind == "version":
        version, why = draw(st.sampled_from(_ODD_VERSIONS))
    start = b"%s %s %s" % (method, target, version)
    if kind == "request-line":
        start = draw(st.sampled_from([start.replace(b" ", b"  ", 1), start.replace(b" ", b"\t", 1),
                                      start + b" ", b"\r\n" + start, b" " + start]))
    lines: list[bytes] = []
    if version != b"HTTP/1.0" or draw(st.booleans()):
        lines.append(b"Host: " + draw(st.sampled_from([b"example.com", b"127.0.0.1:8080", b""])))
    if kind == "host":
        lines = draw(st.sampled_from([[], [b"Host: a", b"host: b"], [b"Host : a"]]))
        if version == b"HTTP/1.0" and not lines:
            lines = [b"Host: a", b"Host: a"]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(_NAMES)) + b":" + draw(st.sampled_from(_OWS)) +
                     draw(st.sampled_from(_VALUES)) + draw(st.sampled_from(_OWS)))
    absolute = not target.startswith(b"/") and b"://" in target
    unsafe = absolute and "absolute-form-connection" in OPEN_DEFECTS
    options = [c for c in _CONNECTION
               if not (unsafe and c[0].startswith((b"close", b"keep-alive")))]
    if draw(st.booleans()):
        value, more = draw(st.sampled_from(options))
        lines += [b"Connection: " + value, *more]
    lines += draw(st.lists(st.sampled_from(_HOP), max_size=2))
    body = b""
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if kind == "length":
        framing = "length"
    elif kind in ("te", "size", "ext", "chunk-end", "trailer"):
        framing = "chunked"
    if framing == "length":
        body = draw(st.binary(max_size=48))
        value = draw(st.sampled_from([b"%d", b"0%d", b" %d\t"])) % len(body)
        lines.append(b"Content-Length:" + value)
        if draw(st.integers(0, 4)) == 0:
            lines.append(b"content-length: %d" % len(body))  # the same value again: allowed
        if kind == "length":
            n = len(body)
            lines[-1], why = draw(st.sampled_from([
                (b"Content-Length: %d, %d" % (n, n), CL_LIST),
                (b"Content-Length: %019d" % n, CL_DIGITS),
                (b"Content-Length: %020d" % n, CL_DIGITS),
                (b"Content-Length: +%d" % n, ""), (b"Content-Length: 0x%x" % n, ""),
                (b"Content-Length: -1", ""), (b"Content-Length:", ""),
                (b"Content-Length: %d %d" % (n, n), ""),
                (b"Content-Length: %d\r\nContent-Length: %d" % (n, n + 1), ""),
                (b"Content-Length: %021d" % n, "")]))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: " + draw(st.sampled_from([b"chunked", b"Chunked",
                                                                    b" CHUNKED\t"])))
        chunks = draw(st.lists(st.binary(min_size=1, max_size=24), max_size=3))
        sizes = [_size(draw, len(c)) for c in chunks]
        exts = [draw(st.sampled_from(_GOOD_EXT)) for _ in range(len(chunks) + 1)]
        ends = [b"\r\n"] * len(chunks)
        trailers = [t + b"\r\n" for t in draw(st.lists(st.sampled_from(_TRAILERS), max_size=2))]
        if kind in ("size", "ext", "chunk-end") and not chunks:
            chunks, sizes, ends = [b"hello"], [b"5"], [b"\r\n"]
            exts.insert(0, b"")
        at = draw(st.integers(0, max(0, len(chunks) - 1)))
        if kind == "te":
            lines[-1], why = draw(st.sampled_from([
                (lines[-1] + b"\r\nContent-Length: 3", TE_AND_CL),
                (b"Content-Length: 3\r\n" + lines[-1], TE_AND_CL),
                (b"Transfer-Encoding: gzip, chunked", ""),
                (b"Transfer-Encoding: chunked, chunked", ""),
                (b"Transfer-Encoding: identity", ""),
                (lines[-1] + b"\r\nTransfer-Encoding: chunked", "")]))
            if not why and draw(st.booleans()):
                version = b"HTTP/1.0"
                start = b"%s %s HTTP/1.0" % (method, target)
                lines[-1], why = b"Transfer-Encoding: chunked", TE_HTTP10
        elif kind == "size":
            n = len(chunks[at])
            sizes[at], why = draw(st.sampled_from([
                (b"%x " % n, SIZE_OWS), (b"%x\t" % n, SIZE_OWS), (b"%x  \t" % n, SIZE_OWS),
                (b"%017x" % n, SIZE_DIGITS), (b"%020x" % n, SIZE_DIGITS),
                (b"8000000000000000", SIZE_DIGITS), (b"1%016x" % n, SIZE_DIGITS),
                (b" %x" % n, ""), (b"-%x" % n, ""), (b"0x%x" % n, ""), (b"%x\n" % n, ""),
                (b"%x\r" % n, ""), (b"", ""), (b"%021x" % n, ""), (b"g", "")]))
        elif kind == "ext":
            exts[at], why = draw(st.sampled_from(_BAD_EXT))
        elif kind == "chunk-end":
            ends[at] = draw(st.sampled_from([b"XX", b"\n", b"\rX", b"", b"\r\r\n"]))
        elif kind == "trailer":
            bad, why = draw(st.sampled_from(_BAD_TRAILERS))
            trailers.insert(draw(st.integers(0, len(trailers))), bad)
        body = b"".join(s + e + b"\r\n" + c + end
                        for s, e, c, end in zip(sizes, exts[:-1], chunks, ends, strict=True))
        body += b"0" + exts[len(chunks)] + b"\r\n" + b"".join(trailers) + b"\r\n"
        if version == b"HTTP/1.0":
            why = why or TE_HTTP10
    lines = draw(st.permutations(lines))
    eols = [b"\r\n"] * len(lines)
    blank = first = b"\r\n"
    if kind in ("line", "fold", "lf") and not lines:
        lines, eols = [b"X-A: 1"], [b"\r\n"]
    spot = draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "line":
        bad, why = draw(st.sampled_from(_BAD_LINES))
        lines.insert(spot, bad)
        eols.append(b"\r\n")
    elif kind == "fold":
        # Not the first line: a fold there is refused by h11 too ("continuation at start").
        lines.insert(spot + 1, draw(st.sampled_from([b" more", b"\tmore", b"  "])))
        eols.append(b"\r\n")
        why = OBS_FOLD
    elif kind == "lf":
        why = BARE_LF
        where = draw(st.sampled_from(["line", "all", "blank"]))
        if where == "line":
            eols[spot] = b"\n"
        elif where == "all":
            eols, blank, first = [b"\n"] * len(lines), b"\n", b"\n"
        else:
            blank = b"\n"
    head = start + first + b"".join(line + eol for line, eol in zip(lines, eols, strict=True))
    return Message(head + blank + body, why)


def stream() -> st.SearchStrategy[list[Message]]:
    """One to three pipelined requests."""
    return st.lists(message(), min_size=1, max_size=3)
