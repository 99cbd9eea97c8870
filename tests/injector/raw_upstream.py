"""A raw-socket upstream for proxy tests: canned (also malformed) responses, lazy streams, capture.

Run: ``python -m tests.injector.raw_upstream PORT CAPTURE_DIR`` (binds 127.0.0.1).

Every byte received on a connection is appended to ``CAPTURE_DIR/N.bin`` (N counts
connections) as it arrives, so a test can check what the proxy forwarded, and what it did not.
Requests are read leniently (Content-Length, or chunked): a proxy that
forwards something malformed shows up in the capture, not as an error here. Routes:

* ``/canned/NAME``: the bytes of ``CANNED[NAME]``, then the connection closes;
* ``/headers/N``: 200 with N extra header lines (``x-h-I: I``) and body ``ok``;
* ``/stream/N``: N bytes with a Content-Length, generated as the socket drains (never held
  in memory: a multi-GB response costs nothing here);
* ``/stall``: reads the request, never answers;
* ``/slow-head/MS``: answers ``ok`` after MS milliseconds;
* ``/ws``: a WebSocket handshake (426 without ``Upgrade: websocket``), then an echo of every
  byte until the peer closes;
* anything else: 200 ``ok``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import sys
from pathlib import Path

CANNED: dict[str, bytes] = {
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "no-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nok",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "folded": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "bare-lf-in-head": b"HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\nContent-Length: 2\r\n\r\nok",
    "long-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "no-space-status": b"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok",
    "both-lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked"
                     b"\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n",
    "bare-lf-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
    "length-in-trailer": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
                          b"0\r\nContent-Length: 5\r\n\r\n"),
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok",
    "te-in-http10": (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n"),
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
}

_PIECE = b"x" * 65536
_counter = itertools.count()


class _Recorder:
    """A reader that appends everything it reads to a file."""

    def __init__(self, reader: asyncio.StreamReader, file: Path) -> None:
        self.reader = reader
        self.file = file

    def _keep(self, data: bytes) -> bytes:
        with self.file.open("ab") as out:
            out.write(data)
        return data

    async def readuntil(self, separator: bytes) -> bytes:
        try:
            return self._keep(await self.reader.readuntil(separator))
        except asyncio.IncompleteReadError as exc:
            self._keep(exc.partial)
            raise

    async def read(self) -> bytes:
        return self._keep(await self.reader.read(65536))

    async def readexactly(self, count: int) -> bytes:
        try:
            return self._keep(await self.reader.readexactly(count))
        except asyncio.IncompleteReadError as exc:
            self._keep(exc.partial)
            raise


async def _read_request(reader: _Recorder) -> tuple[bytes, dict[bytes, bytes]] | None:
    """One request's target and header fields (its body read and dropped), or None at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.split(b"\r\n")
    target = lines[0].split(b" ")[1] if lines[0].count(b" ") >= 2 else b"/"
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    try:
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            while size := int((await reader.readuntil(b"\n")).split(b";")[0].strip(), 16):
                await reader.readexactly(size + 2)
            while (await reader.readuntil(b"\n")).strip():
                pass  # trailer lines, up to the empty one
        elif fields.get(b"content-length", b"0").isdigit():
            await reader.readexactly(int(fields.get(b"content-length", b"0")))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
            ValueError):
        return None
    return target, fields


async def _stream(writer: asyncio.StreamWriter, size: int) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: %d\r\n\r\n" % size)
    while size > 0:
        piece = _PIECE if size >= len(_PIECE) else _PIECE[:size]
        size -= len(piece)
        writer.write(piece)
        await writer.drain()


async def _websocket(reader: _Recorder, writer: asyncio.StreamWriter,
                     fields: dict[bytes, bytes]) -> None:
    """Accept a WebSocket handshake, then echo every byte back until the peer closes."""
    if fields.get(b"upgrade", b"").lower() != b"websocket" or \
            b"upgrade" not in fields.get(b"connection", b"").lower():
        writer.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        return
    key = fields.get(b"sec-websocket-key", b"") + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    accept = base64.b64encode(hashlib.sha1(key).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while data := await reader.read():
        writer.write(data)
        await writer.drain()


def _ok(extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + extra + \
        b"Content-Length: 2\r\n\r\nok"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 capture: Path) -> None:
    file = capture / f"{next(_counter)}.bin"
    recording = _Recorder(reader, file)
    try:
        while True:
            request = await _read_request(recording)
            if request is None:
                return
            target, fields = request
            path = target.decode("latin-1").split("?", 1)[0]
            if path == "/ws":
                await _websocket(recording, writer, fields)
                return
            if path.startswith("/canned/"):
                writer.write(CANNED[path.removeprefix("/canned/")])
                await writer.drain()
                return
            if path.startswith("/headers/"):
                count = int(path.rsplit("/", 1)[1])
                writer.write(_ok(b"".join(b"x-h-%d: %d\r\n" % (i, i) for i in range(count))))
            elif path.startswith("/stream/"):
                await _stream(writer, int(path.rsplit("/", 1)[1]))
            elif path == "/stall":
                while await recording.read():
                    pass
                return
            elif path.startswith("/slow-head/"):
                await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
                writer.write(_ok())
            else:
                writer.write(_ok())
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


async def main(port: int, capture: Path) -> None:
    """Serve until killed."""
    capture.mkdir(parents=True, exist_ok=True)
    server = await asyncio.start_server(lambda r, w: _serve(r, w, capture), "127.0.0.1", port,
                                        limit=1 << 20, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
