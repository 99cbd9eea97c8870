"""Run metrics on a Prometheus Pushgateway, for dashboards and alert rules.

A game day pushes one group per run (``job="gameday"``, ``environment``, ``run``)::

    chaos_run_active{scenario}              1 from the start notice until the summary
    chaos_run_step{scenario}                severity of the fault in place (0: none)
    chaos_run_aborted{scenario}             1 once a guard (or a vanished fault) stopped the run
    chaos_guard_breaches_total{scenario}    guard breaches so far
    chaos_run_rollback_failed{scenario}     1 when rollback could not verify a clean target
    chaos_run_baseline{scenario, service, metric}   the run's baseline (p95 ms, error %)

With the grouping labels these carry ``run, scenario, environment``, like the proxies'
``chaos_active``, so rules can join them. The sink only updates its state when a notice comes;
a background thread pushes the state at once and then every ``heartbeat`` seconds, each push
bounded by ``timeout``, so the Pushgateway's ``push_time_seconds`` tells a live run from one
whose process died. At the end the group is deleted — unless the rollback failed: then it stays,
with ``chaos_run_rollback_failed 1``, so the alert keeps firing until a person clears it.
A run whose process was killed cannot delete its group; the next run of the environment does,
as prepare sweeps leftover faults: it holds the environment's lock, so no other run of it lives.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from gameday.errors import PushError as PushError  # re-exported from its old home
from gameday.notify.core import Notice
from gameday.notify.notices import (
    BreachNotice,
    RollbackFailedNotice,
    RollbackNotice,
    StartNotice,
    StepNotice,
    SummaryNotice,
    VanishedNotice,
)

JOB = "gameday"
_SAFE = re.compile(r"[A-Za-z0-9_.:-]+")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLabels:
    """The labels a run's metrics share with the faults it injects."""

    run: str
    scenario: str
    environment: str


@dataclass
class RunState:
    """What the run's metrics say right now."""

    active: int = 0
    step: int = 0
    aborted: int = 0
    breaches: int = 0
    rollback_failed: int = 0
    service: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)


def _quote(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def exposition(labels: RunLabels, state: RunState) -> str:
    """The Prometheus text format of ``state`` (the grouping labels are added by the gateway)."""
    scenario = f'scenario="{_quote(labels.scenario)}"'
    lines = []
    for name, kind, value in (("chaos_run_active", "gauge", state.active),
                              ("chaos_run_step", "gauge", state.step),
                              ("chaos_run_aborted", "gauge", state.aborted),
                              ("chaos_guard_breaches_total", "counter", state.breaches),
                              ("chaos_run_rollback_failed", "gauge", state.rollback_failed)):
        lines += [f"# TYPE {name} {kind}", f"{name}{{{scenario}}} {value}"]
    if state.baseline and state.service:
        lines.append("# TYPE chaos_run_baseline gauge")
        service = f'service="{_quote(state.service)}"'
        lines += [f'chaos_run_baseline{{{scenario},{service},metric="{_quote(metric)}"}} {value!r}'
                  for metric, value in sorted(state.baseline.items())]
    return "\n".join(lines) + "\n"


def group_url(base: str, labels: RunLabels) -> str:
    """The URL of the run's group on the Pushgateway at ``base``."""
    path = [f"job/{JOB}"]
    for name, value in (("environment", labels.environment), ("run", labels.run)):
        if _SAFE.fullmatch(value):
            path.append(f"{name}/{value}")
        else:  # the Pushgateway's own escape for values a path cannot carry
            encoded = base64.urlsafe_b64encode(value.encode()).decode()
            path.append(f"{name}@base64/{encoded}")
    return f"{base.rstrip('/')}/metrics/" + "/".join(path)


def _request(method: str, url: str, timeout: float, body: str | None = None) -> None:
    try:
        response = httpx.request(method, url, content=body, timeout=timeout, trust_env=False,
                                 headers={"content-type": "text/plain; version=0.0.4"})
    except httpx.HTTPError as exc:
        raise PushError(f"{method} failed: {type(exc).__name__}") from exc
    if response.status_code >= 300:
        raise PushError(f"{method} answered HTTP {response.status_code}: "
                        f"{response.text.strip()[:200]}")


def finish_run(base: str, labels: RunLabels, state: RunState, timeout: float = 2.0) -> None:
    """End the run's group: delete it, or keep it (inactive) when the rollback failed."""
    url = group_url(base, labels)
    if state.rollback_failed:
        state.active = 0
        _request("PUT", url, timeout, exposition(labels, state))
    else:
        _request("DELETE", url, timeout)


def _rollback_failed(group: dict[str, Any]) -> bool:
    """Whether a group listed by the Pushgateway's API says its run's rollback failed."""
    for series in group.get("chaos_run_rollback_failed", {}).get("metrics", []):
        with contextlib.suppress(TypeError, ValueError):
            if float(series.get("value", 0)) == 1:
                return True
    return False


class RunMetricsSink:
    """Turns a run's notices into its metrics on a Pushgateway (see the module docstring)."""

    name = "pushgateway"

    def __init__(self, url: str, labels: RunLabels, heartbeat: float = 5.0,
                 timeout: float = 2.0) -> None:
        self.url, self.labels, self.heartbeat, self.timeout = url, labels, heartbeat, timeout
        self.state = RunState()
        self.failures = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None

    def send(self, notice: Notice) -> None:
        """Update the state from one notice and wake the pusher; never blocks on the network."""
        with self._lock:
            state = self.state
            match notice:
                case StartNotice():
                    state.active = 1
                    state.service = notice.service or None
                    state.baseline = {b.metric: b.value for b in notice.baseline}
                case StepNotice():
                    state.step = notice.severity
                case BreachNotice():
                    state.breaches += 1
                    state.aborted = 1
                case VanishedNotice():
                    state.aborted = 1
                case RollbackNotice():
                    state.step = 0
                case RollbackFailedNotice():
                    state.rollback_failed = 1
                case SummaryNotice():
                    state.active = 0
                    if notice.digest.outcome == "aborted":
                        state.aborted = 1
                case _:
                    return
        if self._pusher is None and isinstance(notice, StartNotice):
            self._pusher = threading.Thread(target=self._push_loop, daemon=True,
                                            name=f"pushgateway-{self.labels.run[:8]}")
            self._pusher.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the heartbeat and end the run's group (see ``finish_run``)."""
        if self._pusher is None:
            return  # never started (refused, dry run): nothing was pushed
        self._stop.set()
        self._wake.set()
        self._pusher.join(self.timeout + 1.0)
        with self._lock:
            state = RunState(**vars(self.state))
        try:
            finish_run(self.url, self.labels, state, self.timeout)
        except PushError as exc:
            log.warning("run metrics: could not end the group of run %s: %s", self.labels.run,
                        exc)

    def sweep(self) -> list[str]:
        """Delete the groups earlier runs of this environment left behind; the runs deleted.

        Groups whose rollback failed stay: their alert waits for a person.
        """
        try:
            response = httpx.get(f"{self.url.rstrip('/')}/api/v1/metrics", timeout=self.timeout,
                                 trust_env=False)
            response.raise_for_status()
            groups = response.json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("run metrics: cannot list the Pushgateway's groups: %s",
                        type(exc).__name__)
            return []
        swept = []
        for group in groups:
            labels = group.get("labels", {})
            run = labels.get("run")
            if (labels.get("job") != JOB or labels.get("environment") != self.labels.environment
                    or not run or run == self.labels.run):
                continue
            if _rollback_failed(group):
                continue
            try:
                _request("DELETE", group_url(self.url, RunLabels(run, "", self.labels.environment)),
                         self.timeout)
            except PushError as exc:
                log.warning("run metrics: cannot delete the group of run %s: %s", run, exc)
            else:
                swept.append(run)
        return swept

    def _push_loop(self) -> None:
        self.sweep()
        while not self._stop.is_set():
            self._wake.wait(self.heartbeat)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                body = exposition(self.labels, self.state)
            try:
                _request("PUT", group_url(self.url, self.labels), self.timeout, body)
            except PushError as exc:
                self.failures += 1
                if self.failures == 1:  # once per streak: a down gateway must not flood logs
                    log.warning("run metrics: push failed: %s", exc)
            else:
                self.failures = 0
