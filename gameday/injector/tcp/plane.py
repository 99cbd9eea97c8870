"""TCP mode's data plane: the open connections, and what a rule change does to them."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from gameday.injector.proxy.metrics import ProxyMetrics
from gameday.injector.proxy.store import RuleStore
from gameday.injector.tcp.conn import Conn
from gameday.injector.tcp.rules import TcpRule
from gameday.injector.tcp.side import Side
from gameday.injector.tcp.stats import ConnectionStats

if TYPE_CHECKING:
    from gameday.tracing.faults import FaultSpans


class TcpPlane:
    """Shared state of every proxied connection: upstream, rules, metrics, RNG, the cap."""

    def __init__(self, loop: asyncio.AbstractEventLoop, upstream: tuple[str, int],
                 store: RuleStore[TcpRule], metrics: ProxyMetrics, rng: random.Random,
                 max_connections: int, spans: FaultSpans | None = None) -> None:
        self.loop = loop
        #: Spans for faulted connections; None when this process is not traced.
        self.spans = spans
        self.upstream = upstream
        self.store = store
        self.metrics = metrics
        self.rng = rng
        self.max_connections = max_connections
        self.conns: set[Conn] = set()
        self.stats = ConnectionStats(lambda: len(self.conns))
        metrics.registry.register(self.stats)
        store.on_ended = self.rules_changed
        store.on_started = self.rules_changed

    def protocol(self) -> Side:
        """The protocol object of a new client socket (its connection comes with it)."""
        return Conn(self).client

    def rules_changed(self, ended: set[str] | None = None) -> None:
        """Rules started or ended: every open connection meets the new rule set at once.

        A walk over every connection, but only when a rule changes, which is rare next to
        bytes; the byte path keeps no index of who holds what.
        """
        for conn in list(self.conns):
            conn.replan()

    def close(self) -> None:
        """Close every connection (the proxy is stopping)."""
        for conn in list(self.conns):
            conn.end("stopped")
