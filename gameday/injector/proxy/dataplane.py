"""The data plane's shared state: upstream pool, rules, metrics, RNG, the open connections.

Each client connection is a :class:`~gameday.injector.proxy.client.ClientConn`; each upstream
connection an :class:`~gameday.injector.proxy.upstream.UpstreamConn` from the pool.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from gameday.injector.proxy.client import ClientConn
from gameday.injector.proxy.limits import Limits
from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.store import HttpRuleStore
from gameday.injector.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from gameday.tracing.faults import FaultSpans


class DataPlane:
    """Shared state of every client connection: pool, rules, metrics, RNG."""

    def __init__(self, loop: asyncio.AbstractEventLoop, upstream: tuple[str, int],
                 store: HttpRuleStore, metrics: ProxyMetrics, rng: random.Random,
                 limits: Limits | None = None, spans: FaultSpans | None = None) -> None:
        self.loop = loop
        #: Spans for faulted and sampled requests; None when this process is not traced.
        self.spans = spans
        self.upstream_url = f"http://{upstream[0]}:{upstream[1]}"
        self.host_line = f"Host: {upstream[0]}:{upstream[1]}".encode()
        self.pool = UpstreamPool(loop, *upstream)
        self.store = store
        self.metrics = metrics
        self.rng = rng
        self.clients: set[ClientConn] = set()
        #: The client connections that became WebSocket tunnels (also in ``clients``).
        self.tunnels: set[ClientConn] = set()
        #: Connections refused over the cap that are not closed yet.
        self.refused_open = 0
        self.sweep_every = 5.0
        self.limits = limits = limits or Limits()
        self.idle_ticks = max(1, round(limits.idle_timeout / self.sweep_every))
        store.on_ended = self.rules_ended
        store.on_started = self.rules_started

    def protocol(self) -> ClientConn:
        """A protocol object for one new client connection."""
        return ClientConn(self)

    def rules_ended(self, ended: set[str]) -> None:
        """Let go of what the ended rules hold: delays end, throttles lift, blackholes close.

        A walk over every connection, but only when a rule ends, which is rare next to
        requests; the request path keeps no index of who holds what.
        """
        for client in list(self.clients):
            client.rules_ended(ended)

    def rules_started(self) -> None:
        """New or changed rules reach the open tunnels (reset, bandwidth)."""
        for tunnel in list(self.tunnels):
            tunnel.rules_started()

    def sweep(self) -> None:
        """Close client and upstream connections that stayed idle too long."""
        for client in list(self.clients):
            client.tick(self.idle_ticks)
        self.pool.sweep(self.idle_ticks)

    def close(self) -> None:
        """Close every connection."""
        for client in list(self.clients):
            client.close()
        self.pool.close()
