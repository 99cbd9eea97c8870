"""A TCP upstream for the TCP mode's tests: an echo, a byte generator, and a log of each end.

Run: ``python -m tests.injector.echo_upstream PORT`` (binds 127.0.0.1).

* Every byte a connection sends comes back (flow control kept: reading pauses while the
  way back is full).
* A connection whose first bytes are ``GEN N\\n`` gets N bytes of :func:`pattern` instead
  (made as the socket drains, so N may be large), then a FIN.
* When a connection ends, one JSON line goes to stdout: ``{"conn": I, "received": BYTES,
  "end": "eof" | "reset" | "closed"}``, so a test can tell what the upstream saw (how many
  bytes, and whether the proxy sent it a FIN or an RST).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys

_COUNTER = itertools.count(1)
_GEN_CHUNK = 64 * 1024


def pattern(start: int, length: int) -> bytes:
    """Bytes ``start..start+length`` of the generated stream: byte ``i`` is ``i % 251``."""
    return bytes((start + i) % 251 for i in range(length))


class Echo(asyncio.Protocol):
    """One connection: echo, or generate after ``GEN N``."""

    def __init__(self) -> None:
        self.conn = next(_COUNTER)
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self.first = b""
        self.mode = "?"  # "?" until the first line tells, then "echo" or "gen"
        self.to_send = 0
        self.sent = 0
        self.full = False
        self.end = "closed"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(256 * 1024)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.received += len(data)
        if self.mode == "?":
            self.first += data
            if not self.first.startswith(b"GEN "[:len(self.first)]):
                self.mode, data, self.first = "echo", self.first, b""
            elif b"\n" in self.first:
                self.mode = "gen"
                self.to_send = int(self.first[4:self.first.index(b"\n")])
                self._generate()
                return
            else:
                return
        if self.mode == "echo":
            self.transport.write(data)

    def _generate(self) -> None:
        assert self.transport is not None
        while not self.full and self.sent < self.to_send:
            size = min(_GEN_CHUNK, self.to_send - self.sent)
            self.transport.write(pattern(self.sent, size))
            self.sent += size
        if self.sent >= self.to_send and not self.full:
            self.transport.close()

    def pause_writing(self) -> None:
        self.full = True
        if self.transport is not None and self.mode == "echo":
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.full = False
        if self.transport is None:
            return
        if self.mode == "gen":
            self._generate()
        else:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.end = "eof"
        if self.transport is not None and self.mode != "gen":
            self.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionResetError):
            self.end = "reset"
        print(json.dumps({"conn": self.conn, "received": self.received, "end": self.end}),
              flush=True)


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port`` for ever."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
