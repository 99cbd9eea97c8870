"""httpx transports that inject faults into a Python service's own outgoing calls.

::

    client = httpx.Client(transport=FaultTransport(rules_file="/etc/chaos/rules.yaml",
                                                   target="checkout/payments"))
    client = httpx.AsyncClient(transport=AsyncFaultTransport(rules=[rule]))

Rules are given directly or read from a JSON or YAML file ``{"rules": [rule, ...]}`` (the rule
shape of the proxy's admin API; a ``ttl`` in a file counts from the file's modification time).
The file is re-read when it changes (a mounted ConfigMap is replaced by a symlink swap, which
changes what ``stat`` sees), by a watcher thread and within limits
(:mod:`gameday.injector.rules_file`). A file that is missing, invalid, too large or hostile
injects nothing and is counted in ``gameday_transport_rules_errors_total``: a broken chaos
config must not break, nor slow, the service. Expired rules are dropped by time, whether or not
traffic flows: ``active_rules()`` shows it. The ``transport`` driver
(:mod:`gameday.drivers.transport`) writes such a file, each rule with its absolute
``expires_at``, so a rule stops at its expiry even when the process that wrote it is gone. A
rule with a ``lease`` also stops at its run's deadline in the file's ``leases``, checked on
every request: a run that stops renewing ends its faults with no change to the file.

What the caller sees per fault: a delay; an ``abort`` as a response with that status (the
inner transport is not called); a ``reset`` as ``httpx.ReadError``; a ``blackhole`` as
``httpx.ReadTimeout`` after the request's read timeout (or ``httpx.RemoteProtocolError`` when
the rule expires, or its lease lapses, first); a ``bandwidth`` rule as a response body paced to
``kbps``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gameday.injector.decide import PASS, Decision, Request, decide, fault_headers
from gameday.injector.rules import Rule
from gameday.injector.rules_file import Clock, RuleSource, load_rules_file

if TYPE_CHECKING:
    from gameday.tracing.faults import FaultSpan

__all__ = ["AsyncFaultTransport", "FaultTransport", "RuleSource", "load_rules_file"]


class _Injector:
    """What both transports share: the rule source, the seeded RNG, the decision."""

    def __init__(self, rules: Sequence[Rule] | None, rules_file: str | Path | None,
                 seed: int | None, target: str | None, clock: Clock) -> None:
        self.source = RuleSource(rules, rules_file, clock)
        self.rng = random.Random(seed)
        self.target = target
        self._lock = threading.Lock()

    def decide(self, request: httpx.Request) -> Decision:
        rules = self.source.active()
        if not rules:
            return PASS
        meta = Request(request.method, request.url.raw_path.decode("ascii"),
                       {name.lower(): value for name, value in request.headers.items()})
        with self._lock:  # one RNG, many threads: draws must stay in a single sequence
            return decide(rules, meta, self.rng, self.source.clock(), self.target)

    def abort(self, request: httpx.Request, decision: Decision) -> httpx.Response:
        rule = decision.rules[-1]
        body = {"error": "fault injected", "fault": "abort", "status": decision.status,
                "rule": rule.id, "scenario": rule.labels.scenario}
        return httpx.Response(decision.status, headers=fault_headers(decision), json=body,
                              request=request)

    def blackhole_hold(self, request: httpx.Request, rule: Rule,
                       held: float) -> tuple[float, bool]:
        """Seconds more to hold after ``held``, and whether the client's read timeout ends it."""
        timeout = (request.extensions.get("timeout") or {}).get("read")
        until_expiry = max(0.0, rule.expires_at - self.source.clock())
        if timeout is not None and timeout - held <= until_expiry:
            return max(0.0, timeout - held), True
        return until_expiry, False

    def renewed(self, rule: Rule) -> Rule | None:
        """``rule`` as the source has it now, if a renewal of its lease moved its end later.

        A leased rule's ``expires_at`` is its lease deadline as of the decision: a blackhole
        held to it must go on while the run renews, and end at once when it stops.
        """
        if rule.lease is None:
            return None
        return next((r for r in self.source.active()
                     if r.id == rule.id and r.expires_at > rule.expires_at), None)

    @staticmethod
    def trace(request: httpx.Request, decision: Decision) -> FaultSpan | None:
        """Mark the client's span with the fault (``gameday.tracing.faults``), in a service
        that traces with the OpenTelemetry SDK; a service that never imported OpenTelemetry
        pays nothing. Returns the span to end when the call's own span does not record."""
        if "opentelemetry.trace" not in sys.modules:
            return None
        from gameday.tracing.faults import transport_spans

        spans = transport_spans()
        if spans is None:
            return None
        span, traceparent = spans.client(decision, request.method)
        if traceparent is not None:
            request.headers["traceparent"] = traceparent  # the server becomes its child
        return span

    @staticmethod
    def mark(request: httpx.Request, decision: Decision) -> None:
        for name, value in fault_headers(decision):
            existing = request.headers.get(name)
            request.headers[name] = f"{existing},{value}" if existing and name == "baggage" \
                else value

    @staticmethod
    def marked(request: httpx.Request, response: httpx.Response, decision: Decision,
               stream: Any) -> httpx.Response:
        headers = httpx.Headers(response.headers)
        for name, value in fault_headers(decision):
            headers[name] = value
        return httpx.Response(response.status_code, headers=headers, stream=stream,
                              extensions=response.extensions, request=request)


def _slices(chunk: bytes, rate: float) -> Iterator[bytes]:
    size = max(256, int(rate / 20))  # 50 ms worth per slice
    for start in range(0, len(chunk), size):
        yield chunk[start:start + size]


class _Throttled(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, kbps: float,
                 sleep: Callable[[float], None]) -> None:
        self.inner, self.rate, self.sleep = inner, kbps * 125.0, sleep

    def __iter__(self) -> Iterator[bytes]:
        # Each slice waits for the one before it to "travel"; the rate is an upper bound.
        wait = 0.0
        for chunk in self.inner:
            for piece in _slices(chunk, self.rate):
                if wait:
                    self.sleep(wait)
                wait = len(piece) / self.rate
                yield piece

    def close(self) -> None:
        self.inner.close()


class _AsyncThrottled(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, kbps: float) -> None:
        self.inner, self.rate = inner, kbps * 125.0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        wait = 0.0
        async for chunk in self.inner:
            for piece in _slices(chunk, self.rate):
                if wait:
                    await asyncio.sleep(wait)
                wait = len(piece) / self.rate
                yield piece

    async def aclose(self) -> None:
        await self.inner.aclose()


def _reset(request: httpx.Request) -> httpx.ReadError:
    return httpx.ReadError("connection reset by peer (fault injected)", request=request)


def _blackholed(request: httpx.Request, by_timeout: bool) -> httpx.TransportError:
    if by_timeout:
        return httpx.ReadTimeout("no answer (blackhole fault injected)", request=request)
    return httpx.RemoteProtocolError("server disconnected without a response (blackhole "
                                     "fault expired)", request=request)


class FaultTransport(httpx.BaseTransport):
    """A sync httpx transport that injects faults before handing requests to ``inner``."""

    def __init__(self, inner: httpx.BaseTransport | None = None, *,
                 rules: Sequence[Rule] | None = None, rules_file: str | Path | None = None,
                 seed: int | None = None, target: str | None = None, clock: Clock = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner if inner is not None else httpx.HTTPTransport()
        self._injector = _Injector(rules, rules_file, seed, target, clock)
        self._sleep = sleep

    @property
    def source(self) -> RuleSource:
        """Where the rules come from."""
        return self._injector.source

    def active_rules(self) -> list[Rule]:
        """Rules in force right now (expired ones dropped, the file re-read if changed)."""
        return self._injector.source.active()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Decide, inject, and forward what is left to the inner transport."""
        injector = self._injector
        decision = injector.decide(request)
        if not decision.rules:
            return self.inner.handle_request(request)
        span = injector.trace(request, decision)
        if span is None:
            return self._faulted(request, decision, None)
        try:
            response = self._faulted(request, decision, span)
        except BaseException as exc:
            span.end(type(exc).__name__, error=True)
            raise
        span.end(response.status_code)
        return response

    def _faulted(self, request: httpx.Request, decision: Decision,
                 span: FaultSpan | None) -> httpx.Response:
        injector = self._injector
        if decision.delay_ms:
            started = time.monotonic()
            self._sleep(decision.delay_ms / 1000)
            if span is not None:
                span.delay_applied(time.monotonic() - started)
        if decision.action == "abort":
            return injector.abort(request, decision)
        if decision.action == "reset":
            raise _reset(request)
        if decision.action == "blackhole":
            rule, held = decision.rules[-1], 0.0
            while True:
                hold, by_timeout = injector.blackhole_hold(request, rule, held)
                self._sleep(hold)
                held += hold
                later = None if by_timeout else injector.renewed(rule)
                if later is None:
                    raise _blackholed(request, by_timeout)
                rule = later
        injector.mark(request, decision)
        response = self.inner.handle_request(request)
        stream: Any = response.stream
        if decision.kbps:
            stream = _Throttled(stream, decision.kbps, self._sleep)
        return injector.marked(request, response, decision, stream)

    def close(self) -> None:
        """Close the inner transport and stop watching the rules file."""
        self._injector.source.close()
        self.inner.close()


class AsyncFaultTransport(httpx.AsyncBaseTransport):
    """An async httpx transport that injects faults before handing requests to ``inner``."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *,
                 rules: Sequence[Rule] | None = None, rules_file: str | Path | None = None,
                 seed: int | None = None, target: str | None = None,
                 clock: Clock = time.time) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._injector = _Injector(rules, rules_file, seed, target, clock)

    @property
    def source(self) -> RuleSource:
        """Where the rules come from."""
        return self._injector.source

    def active_rules(self) -> list[Rule]:
        """Rules in force right now (expired ones dropped, the file re-read if changed)."""
        return self._injector.source.active()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Decide, inject, and forward what is left to the inner transport."""
        injector = self._injector
        decision = injector.decide(request)
        if not decision.rules:
            return await self.inner.handle_async_request(request)
        span = injector.trace(request, decision)
        if span is None:
            return await self._faulted(request, decision, None)
        try:
            response = await self._faulted(request, decision, span)
        except BaseException as exc:
            span.end(type(exc).__name__, error=True)
            raise
        span.end(response.status_code)
        return response

    async def _faulted(self, request: httpx.Request, decision: Decision,
                       span: FaultSpan | None) -> httpx.Response:
        injector = self._injector
        if decision.delay_ms:
            started = time.monotonic()
            await asyncio.sleep(decision.delay_ms / 1000)
            if span is not None:
                span.delay_applied(time.monotonic() - started)
        if decision.action == "abort":
            return injector.abort(request, decision)
        if decision.action == "reset":
            raise _reset(request)
        if decision.action == "blackhole":
            rule, held = decision.rules[-1], 0.0
            while True:
                hold, by_timeout = injector.blackhole_hold(request, rule, held)
                await asyncio.sleep(hold)
                held += hold
                later = None if by_timeout else injector.renewed(rule)
                if later is None:
                    raise _blackholed(request, by_timeout)
                rule = later
        injector.mark(request, decision)
        response = await self.inner.handle_async_request(request)
        stream: Any = response.stream
        if decision.kbps:
            stream = _AsyncThrottled(stream, decision.kbps)
        return injector.marked(request, response, decision, stream)

    async def aclose(self) -> None:
        """Close the inner transport and stop watching the rules file."""
        self._injector.source.close()
        await self.inner.aclose()
