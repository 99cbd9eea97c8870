"""The proxy's deadlines and caps (configurable), beside the fixed limits of its parser.

Configurable, each a ``chaosctl proxy`` option and counted in ``chaos_proxy_limit_hits_total``
by its ``limit`` label:

=====================  =========  ============================================================
``head_timeout``       10 s       from a request head's first byte to its end; then 408
``body_timeout``       30 s       longest silence inside a request body; then 408
``upstream_timeout``   60 s       from the request sent to the response head; then 504
``max_connections``    4096       client connections at once; one more is answered 503, closed
``idle_timeout``       120 s      a keep-alive connection with no request is closed
=====================  =========  ============================================================

An injected delay never counts against a deadline: each starts only when the proxy waits for
the peer (the body after the delay, the upstream after the request went on).

Fixed: a head is at most 64 KiB (431 for a request, 502 for a response); a request has at
most 100 header lines (431), a response at most 1000 (502); a chunk-size line is at most
4096 bytes (400); trailers at most 16 KiB and 100 lines (431).

Memory per connection stays within ``4 × BUFFER_LIMIT`` whatever the peers do: toward the
client and toward the upstream, writing pauses reading from the other side once
``WRITE_HIGH`` bytes are queued (at most one read, ``READ_SIZE``, lands on top); a pipelined
request arriving while a response is in flight stops reading from the client (so it waits in
at most one read). That holds across pipelined requests and pooled upstream connections: an
upstream connection taken for the next request starts paused if the client is still behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from gameday.errors import ConfigError

#: The unit of the per-connection memory bound (``4 × BUFFER_LIMIT``).
BUFFER_LIMIT = 256 * 1024
#: Bytes queued toward a peer before reading from the other side pauses.
WRITE_HIGH = BUFFER_LIMIT // 4
#: The most one read from a socket returns (uvloop's and asyncio's receive size).
READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The configurable deadlines (seconds) and the connection cap."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    upstream_timeout: float = 60.0
    max_connections: int = 4096
    idle_timeout: float = 120.0

    def __post_init__(self) -> None:
        for name in ("head_timeout", "body_timeout", "upstream_timeout", "idle_timeout"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ConfigError(f"--{name.replace('_', '-')} must be longer than 0s")
        if self.max_connections < 1:
            raise ConfigError("--max-connections must be at least 1")
