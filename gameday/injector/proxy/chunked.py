"""The chunked body scanner: strict about every framing byte, blind to the data itself.

Chunk-size and trailer lines are checked as llhttp checks them in strict mode: CRLF only
(no bare LF, no CR without LF), no whitespace around the size, extensions as
``;name[=token|"quoted"]`` with nothing else in them, a size below 2⁶³ (what a signed
64-bit parser can hold), trailers that are well-formed header lines and frame nothing
(``Content-Length``, ``Transfer-Encoding``, ``Host`` are refused there). A line is held back
until its end has arrived and been checked, so a malformed line never goes on, not even in
part; everything else (chunk data) goes on as it arrives.
"""

from __future__ import annotations

import re

from gameday.errors import ParseError

#: Longest chunk-size line, extensions included (llhttp's own cap is 16 KiB).
MAX_CHUNK_LINE = 4096
#: Most bytes and lines a trailer section may hold.
MAX_TRAILER_BYTES = 16 * 1024
MAX_TRAILER_LINES = 100
#: Chunk sizes from here on overflow a signed 64-bit integer.
_SIZE_LIMIT = 1 << 63

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" +
                        _QUOTED + rb"))?)*\r\n")
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[\t\x20-\x7e\x80-\xff]*\r\n")
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})

# Scanner states.
_SIZE, _DATA, _CRLF, _TRAILER, _DONE = range(5)


class ChunkedScanner:
    """Checks a chunked body fed piece by piece; says which bytes may go on, and where it ends.

    ``feed`` returns the bytes that may be sent on now; once ``done``, ``rest`` holds what
    followed the body in the last piece (the next message's bytes).
    """

    __slots__ = ("line", "remaining", "rest", "state", "trailer_bytes", "trailer_lines")

    def __init__(self) -> None:
        self.state = _SIZE
        self.remaining = 0
        self.line = b""
        self.rest = b""
        self.trailer_bytes = 0
        self.trailer_lines = 0

    @property
    def done(self) -> bool:
        """Whether the last chunk and the trailers were seen."""
        return self.state == _DONE

    def feed(self, data: bytes) -> bytes:
        """Check ``data``; the part of it (after any line held from before) that may go on.

        ``ParseError`` when the framing is malformed: nothing of the bad line is returned.
        """
        held = self.line
        pos = 0
        size = len(data)
        if held:
            # A line began in an earlier piece: it must end before anything else goes on.
            end = data.find(b"\n")
            if end < 0:
                self._hold(held + data)
                return b""
            self.line = b""
            self._check_line(held + data[:end + 1], 0, len(held) + end + 1)
            pos = end + 1
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
                offset = 2 - self.remaining
                if data[pos:pos + take] != b"\r\n"[offset:offset + take]:
                    raise ParseError("chunk data not followed by CRLF")
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _SIZE
            elif state == _DONE:
                break
            else:
                end = data.find(b"\n", pos)
                if end < 0:
                    self._hold(data[pos:])
                    return held + data[:pos] if held else data[:pos]
                self._check_line(data, pos, end + 1)
                pos = end + 1
        if self.state == _DONE and pos < size:
            self.rest = data[pos:]
            data = data[:pos]
        return held + data if held else data

    def _hold(self, line: bytes) -> None:
        if len(line) > (MAX_CHUNK_LINE if self.state == _SIZE else MAX_TRAILER_BYTES):
            raise self._too_long()
        self.line = line

    def _too_long(self) -> ParseError:
        if self.state == _SIZE:
            return ParseError("chunk-size line too long")
        return ParseError("trailer section too large", 431)

    def _check_line(self, data: bytes, begin: int, end: int) -> None:
        """Check the line ``data[begin:end]`` (it ends with LF) and move on."""
        if self.state == _SIZE:
            if end - begin > MAX_CHUNK_LINE:
                raise self._too_long()
            match = _SIZE_LINE.fullmatch(data, begin, end)
            if match is None:
                raise ParseError("malformed chunk-size line")
            length = int(match[1], 16)
            if length >= _SIZE_LIMIT:
                raise ParseError("chunk size too large")
            if length:
                self.state, self.remaining = _DATA, length
            else:
                self.state = _TRAILER
            return
        self.trailer_bytes += end - begin
        self.trailer_lines += 1
        if self.trailer_bytes > MAX_TRAILER_BYTES or self.trailer_lines > MAX_TRAILER_LINES + 1:
            raise self._too_long()
        if end - begin == 2 and data[begin] == 13:  # b"\r\n": the end of the trailers
            self.state = _DONE
            return
        match = _FIELD_LINE.fullmatch(data, begin, end)
        if match is None:
            raise ParseError("malformed trailer line")
        if match[1].lower() in _FRAMING:
            raise ParseError(f"{match[1].decode('latin-1')} is not allowed in trailers")
