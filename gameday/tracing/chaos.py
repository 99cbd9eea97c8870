"""The ``chaos.*`` span attributes: what a fault did to one request or connection.

No OpenTelemetry semantic convention covers fault injection (the nearest is ``feature_flag.*``),
so gameday uses its own small vocabulary; the README lists it. Every faulted span carries
``chaos.faulted = true`` and an event ``chaos.injected`` at the moment the fault acted.
"""

from __future__ import annotations

from collections.abc import Iterable

from gameday.records import Labels

FAULTED = "chaos.faulted"
RUN = "chaos.run"
SCENARIO = "chaos.scenario"
ENVIRONMENT = "chaos.environment"
STEP = "chaos.step"
FAULT = "chaos.fault"  # the kinds that fired, comma-separated: "latency", "latency,abort"
RULE = "chaos.rule"  # the ids of the rules that fired, comma-separated
DELAY_REQUESTED_MS = "chaos.delay.requested_ms"
DELAY_APPLIED_MS = "chaos.delay.applied_ms"
ABORT_STATUS = "chaos.abort.status"
BANDWIDTH_KBPS = "chaos.bandwidth.kbps"
INJECTOR = "chaos.injector"  # proxy, proxy-tcp, transport, point, grpc
POINT = "chaos.point"  # the fault point's name (point, grpc)
ERROR = "chaos.error"  # the error a fault point raised, or the gRPC status it ended a call with
#: The event at the moment of injection (a delay's start, an abort's answer, a reset).
INJECTED_EVENT = "chaos.injected"

ALL = (FAULTED, RUN, SCENARIO, ENVIRONMENT, STEP, FAULT, RULE, DELAY_REQUESTED_MS,
       DELAY_APPLIED_MS, ABORT_STATUS, BANDWIDTH_KBPS, INJECTOR, POINT, ERROR)


def label_attributes(labels: list[Labels]) -> dict[str, str | int]:
    """``chaos.run``, ``.scenario``, ``.environment``, ``.step`` for the rules that fired (the
    newest rule's step; runs and scenarios comma-joined when rules of several fired)."""
    if not labels:
        return {}
    newest = labels[-1]
    return {RUN: _join(label.run for label in labels),
            SCENARIO: _join(label.scenario for label in labels),
            ENVIRONMENT: _join(label.environment for label in labels),
            STEP: newest.step}


def _join(values: Iterable[str]) -> str:
    return ",".join(dict.fromkeys(values))
