"""The live state of one run in this process: what prepare built and the later phases use.

Nothing here is needed to clean up: rollback works from the journal and the drivers alone, so
a hook in another process can revert a run whose process died.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from gameday.drivers.base import Driver
from gameday.guards import GuardQuery, Prometheus, Sampler, SignalQuery, Window
from gameday.journal import Journal
from gameday.models import Endpoint, Environment, Scenario
from gameday.notify import Notice, Notifier
from gameday.protocol.checks import Request
from gameday.protocol.lease import LeaseKeeper
from gameday.protocol.lock import EnvironmentLock
from gameday.records import FaultSpec, Labels


def endpoint_key(endpoint: Endpoint) -> str:
    """The place a driver reports in its handles (admin URL, rules file or namespace)."""
    if endpoint.admin_url:
        return endpoint.admin_url.rstrip("/")
    return endpoint.rules_file or endpoint.namespace or endpoint.service


@dataclass
class RunContext:
    """Everything a running game day holds open."""

    run: str
    request: Request
    severities: list[int]
    guards: list[GuardQuery]
    signals: list[SignalQuery]
    metrics: dict[str, str]
    endpoint: Endpoint
    driver: Driver
    journal: Journal
    notifier: Notifier
    prometheus: Prometheus
    lock: EnvironmentLock | None = None
    baseline: Window | None = None
    requester: str = "unknown"
    swept: list[str] = field(default_factory=list)
    #: What each guard's query returned at preflight, by guard name (a dry run shows it).
    preflight: dict[str, float | None] = field(default_factory=dict)
    #: Receives one line per round of guard samples (live progress for a terminal).
    progress: Callable[[str], None] | None = None
    #: Samples the guards: the Prometheus shell, or one that asks Alertmanager for the
    #: incident guard and Prometheus for the rest.
    sampler: Sampler | None = None
    #: Renews the leases of the run's applied faults (its own thread).
    leases: LeaseKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.driver, self.environment.fault_lease)

    @property
    def scenario(self) -> Scenario:
        """The scenario being run."""
        return self.request.scenario

    @property
    def environment(self) -> Environment:
        """The environment it runs in."""
        return self.request.environment

    @property
    def guard_sampler(self) -> Sampler:
        """What samples this run's guards."""
        return self.sampler if self.sampler is not None else self.prometheus

    def spec(self, severity: int) -> FaultSpec:
        """What step ``severity`` injects, labelled with this run."""
        return FaultSpec(
            fault=self.scenario.step_fault(severity), target=self.scenario.target,
            labels=Labels(run=self.run, scenario=self.scenario.name,
                          environment=self.environment.name, step=severity))

    def notify(self, notice: Notice) -> None:
        """Tell people, off the safety path."""
        self.notifier.post(notice)

    def close(self) -> None:
        """Release the lock and close what is open (the notifier drains briefly)."""
        self.leases.stop()
        self.notifier.close(timeout=5.0)
        self.prometheus.close()
        reader = getattr(self.sampler, "reader", None)
        if reader is not None:
            reader.close()
        if self.lock is not None:
            self.lock.release()
        close = getattr(self.driver, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        self.journal.close()
