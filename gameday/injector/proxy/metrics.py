"""The proxy's Prometheus metrics, in a registry of its own (served at ``/metrics``).

Rule metrics carry ``run, scenario, environment, fault, target``, so a guard or a sweep can
ask "is anything of run X still active here?". ``chaos_active`` drops to 0 (rather than
vanishing) when a rule goes, so a query sees the end of a fault as a value, not as no data.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gameday.injector.rules import RuleBase

RULE_LABELS = ("run", "scenario", "environment", "fault", "target")
_LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
_DELAY_BUCKETS = (.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)


def rule_labels(rule: RuleBase) -> tuple[str, str, str, str, str]:
    """The metric label values of ``rule``, in ``RULE_LABELS`` order."""
    labels = rule.labels
    return (labels.run, labels.scenario, labels.environment, rule.fault.kind, rule.target)


class RequestStats(Collector):
    """Requests by status code and their duration histogram, counted as plain numbers.

    The data plane counts every request; plain integer additions here cost a fraction of what
    labelled client-library children do, and the exposition is built only when scraped.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.codes: dict[str, int] = {}

    def observe(self, code: str, seconds: float) -> None:
        """Count one answered request."""
        self.codes[code] = self.codes.get(code, 0) + 1
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def collect(self) -> Iterator[Metric]:
        """The two metric families, as Prometheus scrapes them."""
        by_code = CounterMetricFamily("chaos_proxy_requests",
                                      "Requests answered by the proxy, by status code (or reset, "
                                      "blackhole, truncated)", labels=["code"])
        for code, count in sorted(self.codes.items()):
            by_code.add_metric([code], count)
        yield by_code
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily("chaos_proxy_request_duration_seconds",
                                    "Time from request head to the end of the response",
                                    buckets=buckets, sum_value=self.total)


class ProxyMetrics:
    """Every metric the proxy exports; ``http=False`` (TCP mode) leaves out the request stats."""

    def __init__(self, *, http: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.active = Gauge("chaos_active", "Active fault rules", RULE_LABELS,
                            registry=registry)
        self.expiry = Gauge("chaos_fault_expiry_timestamp_seconds",
                            "Epoch seconds at which an active fault rule expires by itself",
                            RULE_LABELS, registry=registry)
        self.lease_expired = Counter("chaos_lease_expired_total",
                                     "Fault rules removed because their run stopped renewing "
                                     "their lease", RULE_LABELS, registry=registry)
        unit = "request" if http else "chunk"  # TCP mode delays each chunk of a stream
        self.injected = Counter("chaos_faults_injected_total",
                                "Requests (TCP: connections) a fault rule fired on", RULE_LABELS,
                                registry=registry)
        self.requests = RequestStats()
        if http:
            registry.register(self.requests)
        self.delay_requested = Histogram("chaos_delay_requested_seconds",
                                         f"Delay a latency rule asked for, per {unit}",
                                         buckets=_DELAY_BUCKETS, registry=registry)
        self.delay_applied = Histogram("chaos_delay_applied_seconds",
                                       f"Delay actually applied, per {unit}",
                                       buckets=_DELAY_BUCKETS, registry=registry)
        self.upstream_errors = Counter("chaos_proxy_upstream_errors_total",
                                       "Requests (TCP: connections) that failed to reach the "
                                       "upstream", registry=registry)
        self.limit_hits = Counter("chaos_proxy_limit_hits_total",
                                  "Exchanges cut by a deadline or refused by the connection cap",
                                  ["limit"], registry=registry)
        # One child per limit up front: a limit never hit reads 0, not "no data". TCP mode
        # has the connection cap only.
        if http:
            self.head_timeouts = self.limit_hits.labels("head_timeout")
            self.body_timeouts = self.limit_hits.labels("body_timeout")
            self.upstream_timeouts = self.limit_hits.labels("upstream_timeout")
        self.refused = self.limit_hits.labels("max_connections")
        self.spans_dropped = Counter("chaos_spans_dropped_total",
                                     "Spans of faulted or sampled traffic that could not be "
                                     "exported (queue full, trace folder full, collector "
                                     "unreachable)", registry=registry)

    def count(self, code: int | str, seconds: float) -> None:
        """Count one answered request that took ``seconds``."""
        self.requests.observe(str(code), seconds)

    def rules_changed(self, before: Sequence[RuleBase], after: Sequence[RuleBase]) -> None:
        """Set the rule gauges from the rule sets before and after a change."""
        counts: dict[tuple[str, str, str, str, str], int] = {}
        for rule in after:
            key = rule_labels(rule)
            counts[key] = counts.get(key, 0) + 1
        for rule in before:
            key = rule_labels(rule)
            if key not in counts:
                self.active.labels(*key).set(0)
                with contextlib.suppress(KeyError):
                    self.expiry.remove(*key)
        expiries: dict[tuple[str, str, str, str, str], float] = {}
        for rule in after:
            key = rule_labels(rule)
            expiries[key] = max(expiries.get(key, 0.0), rule.expires_at)
        for key, count in counts.items():
            self.active.labels(*key).set(count)
            self.expiry.labels(*key).set(expiries[key])

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
