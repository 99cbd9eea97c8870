"""What the injectors record: one span per faulted request (proxy, httpx transport) or faulted
connection (the proxy's TCP mode), with the ``chaos.*`` attributes and a ``chaos.injected``
event.

The fault is decided before the span starts, so the sampler can keep every faulted request
(``chaos.faulted`` forces the decision); an unfaulted request is recorded only when its parent
was sampled (or, with no parent, for the configured share of root traces), and otherwise costs
a glance at its ``traceparent``'s flags and nothing more.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gameday.tracing import chaos

if TYPE_CHECKING:
    from gameday.injector.decide import Decision
    from gameday.injector.rules import RuleBase
    from gameday.tracing.setup import Tracing


def _sampled_flag(traceparent: str) -> bool | None:
    """The sampled flag of a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``); None when the
    value is not one (then the request is a root)."""
    if len(traceparent) < 55 or traceparent[2] != "-" or traceparent[35] != "-" \
            or traceparent[52] != "-":
        return None
    try:
        return bool(int(traceparent[53:55], 16) & 1)
    except ValueError:
        return None


def rule_attributes(rules: Sequence[RuleBase], injector: str) -> dict[str, Any]:
    """The ``chaos.*`` attributes every faulted span carries: which rules fired, whose."""
    return {chaos.FAULTED: True, chaos.INJECTOR: injector,
            chaos.FAULT: ",".join(dict.fromkeys(rule.fault.kind for rule in rules)),
            chaos.RULE: ",".join(rule.id for rule in rules),
            **chaos.label_attributes([rule.labels for rule in rules])}


def decision_attributes(decision: Decision, injector: str) -> dict[str, Any]:
    """The ``chaos.*`` attributes of a request a decision faulted."""
    attributes = rule_attributes(decision.rules, injector)
    if decision.delay_ms:
        attributes[chaos.DELAY_REQUESTED_MS] = round(decision.delay_ms, 3)
    if decision.action == "abort":
        attributes[chaos.ABORT_STATUS] = decision.status
    if decision.kbps:
        attributes[chaos.BANDWIDTH_KBPS] = decision.kbps
    return attributes


class FaultSpan:
    """An open span of one faulted (or sampled) request or connection."""

    __slots__ = ("_owned", "_span")

    def __init__(self, span: Any, owned: bool = True) -> None:
        self._span = span
        #: False for a span someone else started (the client's), which they end.
        self._owned = owned

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` to send on, naming this span, so the next hop is its child."""
        context = self._span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def injected(self, what: str, **attributes: Any) -> None:
        """The moment a fault acted: a delay started, an abort was answered, a reset sent."""
        self._span.add_event(chaos.INJECTED_EVENT, {"chaos.action": what, **attributes})

    def delay_applied(self, seconds: float) -> None:
        self._span.set_attribute(chaos.DELAY_APPLIED_MS, round(seconds * 1000, 3))

    def end(self, outcome: int | str, error: bool | None = None) -> None:
        """End the span with the response's status (or ``reset``, ``blackhole``, …)."""
        span = self._span
        if not self._owned:
            return
        if isinstance(outcome, int) and outcome:
            span.set_attribute("http.response.status_code", outcome)
        elif outcome:
            span.set_attribute("chaos.outcome", str(outcome))
        if error if error is not None else (not isinstance(outcome, int) or outcome >= 500):
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR))
        span.end()


class FaultSpans:
    """Starts the spans of one injector (``proxy``, ``proxy-tcp``, ``transport``)."""

    def __init__(self, tracing: Tracing | None, injector: str, ratio: float = 1.0,
                 rng: random.Random | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = tracing.provider if tracing is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer("gameday.injector")
        self._propagator = TraceContextTextMapPropagator()
        self._server = SpanKind.SERVER
        self._internal = SpanKind.INTERNAL
        self.injector = injector
        self.ratio = ratio
        self._rng = rng or random.Random()

    def request(self, traceparent: str | None, decision: Decision, method: str, path: str,
                upstream: str) -> FaultSpan | None:
        """The span of one proxied request, or None when it is neither faulted nor sampled."""
        faulted = bool(decision.rules)
        if not faulted:
            flag = _sampled_flag(traceparent) if traceparent else None
            if flag is False or (flag is None and self.ratio < 1
                                 and self._rng.random() >= self.ratio):
                return None
        context = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path,
                                      "server.address": upstream}
        if faulted:
            attributes.update(decision_attributes(decision, self.injector))
        span = self._tracer.start_span(f"chaos-proxy {method}", context=context,
                                       kind=self._server, attributes=attributes)
        fault_span = FaultSpan(span)
        if faulted:
            fault_span.injected(decision.action if decision.action != "pass" else
                                "delay" if decision.delay_ms else "throttle")
        return fault_span

    def connection(self, rules: Sequence[RuleBase], peer: str, upstream: str) -> FaultSpan:
        """The span of one faulted TCP connection (TCP carries no trace context: a root)."""
        attributes = {**rule_attributes(rules, self.injector), "client.address": peer,
                      "server.address": upstream, "network.transport": "tcp"}
        span = self._tracer.start_span("chaos-proxy tcp", kind=self._server,
                                       attributes=attributes)
        fault_span = FaultSpan(span)
        fault_span.injected(attributes[chaos.FAULT])
        return fault_span

    def client(self, decision: Decision, method: str) -> tuple[FaultSpan, str | None]:
        """Mark the current (client) span with a decision that faulted the request.

        When that span records, it gets the attributes and the event, and is returned to be
        told the applied delay (its owner ends it; no ``traceparent`` to change). When it does
        not (its trace was not sampled), a ``chaos-fault`` child is started and returned with
        its ``traceparent``, because a faulted request is always recorded; the caller ends it
        and sends that ``traceparent`` on.
        """
        from opentelemetry import trace

        current = trace.get_current_span()
        attributes = decision_attributes(decision, self.injector)
        if current.is_recording():
            current.set_attributes(attributes)
            current.add_event(chaos.INJECTED_EVENT, {"chaos.action": decision.action})
            return FaultSpan(current, owned=False), None
        span = self._tracer.start_span(f"chaos-fault {method}", kind=self._internal,
                                       attributes=attributes)
        fault_span = FaultSpan(span)
        fault_span.injected(decision.action)
        return fault_span, fault_span.traceparent

    def point(self, rules: Sequence[RuleBase], point: str, delay_ms: float, waited: float,
              error: str | None, raised: str | None, injector: str = "point", *,
              at: int | None = None) -> None:
        """Mark the current span with a fault point's fault: the ``chaos.*`` attributes, the
        point, the delay and the error; in an unsampled trace, a ``chaos-fault <point>`` span
        of its own records it (a faulted call is always recorded). ``at`` (epoch ns) is when
        the fault began acting, the delay's start: the ``chaos.injected`` event's time, and
        the start of a span of its own, which then lasts the delay."""
        from opentelemetry import trace

        attributes = rule_attributes(rules, injector) | {chaos.POINT: point}
        if delay_ms:
            attributes[chaos.DELAY_REQUESTED_MS] = round(delay_ms, 3)
            attributes[chaos.DELAY_APPLIED_MS] = round(waited * 1000, 3)
        if error is not None and raised is not None:
            attributes[chaos.ERROR] = error
        # The point is on the event too: a span with two points' faults keeps both.
        event = {"chaos.action": "error" if raised else "delay", chaos.POINT: point,
                 **({"exception.type": raised} if raised else {})}
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attributes(attributes)
            current.add_event(chaos.INJECTED_EVENT, event, timestamp=at)
            return
        span = self._tracer.start_span(f"chaos-fault {point}", kind=self._internal,
                                       attributes=attributes, start_time=at)
        span.add_event(chaos.INJECTED_EVENT, event, timestamp=at)
        span.end()


_transport_spans: FaultSpans | None = None
_sdk: bool | None = None


def transport_spans() -> FaultSpans | None:
    """The httpx transport's span maker, when this process has an SDK tracer provider (set by
    :func:`~gameday.tracing.setup.configure` or by the service's own OpenTelemetry set-up).
    Asked only for faulted requests; until a provider is set it is asked again each time."""
    global _transport_spans, _sdk
    if _transport_spans is not None:
        return _transport_spans
    if _sdk is None:
        from gameday.tracing import installed

        _sdk = installed()
    if not _sdk:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        _transport_spans = FaultSpans(None, "transport")
    return _transport_spans


def proxy_spans(injector: str, on_drop: Callable[[int], None]) -> FaultSpans | None:
    """The span maker of a proxy process (``injector``: ``proxy`` or ``proxy-tcp``), tracing
    set up for the process as its environment asks; None when it asks for none."""
    from gameday.tracing.setup import configure, root_ratio

    tracing = configure("chaos-proxy", on_drop=on_drop)
    if tracing is None:
        return None
    return FaultSpans(tracing, injector, ratio=root_ratio())
