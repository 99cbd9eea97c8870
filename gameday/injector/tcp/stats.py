"""TCP mode's connection metrics, counted as plain numbers and exposed when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: How a connection can end, each a ``chaos_proxy_connections_total{end}`` sample from the start
#: (a way that never happened reads 0, not "no data").
ENDS = ("closed", "reset", "timeout", "limit_data", "peer_reset", "upstream_unreachable",
        "refused", "stopped")


class ConnectionStats(Collector):
    """Connections accepted, open, and ended by how they ended."""

    def __init__(self, open_count: Callable[[], int]) -> None:
        self._open_count = open_count
        self.opened = 0
        self.ends = dict.fromkeys(ENDS, 0)

    def ended(self, how: str) -> None:
        """Count one connection that ended ``how`` (one of :data:`ENDS`)."""
        self.ends[how] += 1

    def collect(self) -> Iterator[Metric]:
        """The metric families, as Prometheus scrapes them."""
        yield CounterMetricFamily("chaos_proxy_connections_accepted",
                                  "Client connections accepted (refused ones included)",
                                  value=self.opened + self.ends["refused"])
        ended = CounterMetricFamily("chaos_proxy_connections",
                                    "Client connections that ended, by how: closed (FIN both "
                                    "ways), reset, timeout, limit_data, peer_reset, "
                                    "upstream_unreachable, refused (over --max-connections), "
                                    "stopped", labels=["end"])
        for how, count in self.ends.items():
            ended.add_metric([how], count)
        yield ended
        yield GaugeMetricFamily("chaos_proxy_open_connections", "Client connections open now",
                                value=self._open_count())
