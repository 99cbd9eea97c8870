"""What one faulted trace says, in a sentence and as a waterfall, from spans alone (pure).

Spans arrive as :class:`~gameday.tracing.otlp.SpanRecord` values read back from the trace
files; nothing here reads a file, asks Prometheus or imports OpenTelemetry.

A trace is told from the entry span of the target service (its server span nearest the root
on the way to the faulted span): how long the request took, how much of that went into the
faulted call (every attempt of it, when the service retried), and what gameday injected.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gameday.report.trace_parts import TraceStory, WaterfallBar
from gameday.tracing import chaos
from gameday.tracing.otlp import SpanRecord

#: Bars drawn at most: a trace of a thousand spans would be an unreadable chart.
MAX_BARS = 40
#: The event a service's circuit breaker adds to its span when it rejects a call.
BREAKER_EVENT = "breaker.open"


# --- the trace as a tree ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Tree:
    by_id: dict[str, SpanRecord]
    kids: dict[str, list[SpanRecord]]
    #: Every span with its depth, parents before children, siblings in start order.
    ordered: tuple[tuple[SpanRecord, int], ...]

    def descendants(self, span: SpanRecord) -> Iterator[SpanRecord]:
        """The spans below ``span``, nearest first."""
        level, seen = list(self.kids.get(span.span_id, ())), {span.span_id}
        while level:
            below: list[SpanRecord] = []
            for child in level:
                if child.span_id in seen:
                    continue
                seen.add(child.span_id)
                yield child
                below += self.kids.get(child.span_id, ())
            level = below

    def path(self, span: SpanRecord) -> list[SpanRecord]:
        """The spans from the root down to ``span``."""
        chain, seen = [span], {span.span_id}
        while (parent := self.by_id.get(chain[-1].parent_id)) and parent.span_id not in seen:
            seen.add(parent.span_id)
            chain.append(parent)
        return chain[::-1]


def _tree(spans: Sequence[SpanRecord]) -> _Tree:
    by_id = {s.span_id: s for s in spans}
    kids: dict[str, list[SpanRecord]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.parent_id in by_id and span.parent_id != span.span_id:
            kids.setdefault(span.parent_id, []).append(span)
        else:  # a root, or a span whose parent never reached the files
            roots.append(span)
    ordered: list[tuple[SpanRecord, int]] = []
    seen: set[str] = set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        stack += [(child, depth + 1) for child in reversed(kids.get(span.span_id, ()))]
    # Spans caught in a parent cycle (a corrupt file) are still drawn, at the top level.
    ordered += [(s, 0) for s in sorted(spans, key=lambda s: s.start_ns) if s.span_id not in seen]
    return _Tree(by_id, kids, tuple(ordered))


def _is_proxy(span: SpanRecord) -> bool:
    injector = span.attributes.get(chaos.INJECTOR)
    return span.name.startswith("chaos-proxy") or injector in ("proxy", "proxy-tcp")


def _delay_ms(span: SpanRecord) -> float:
    value = span.attributes.get(chaos.DELAY_APPLIED_MS, span.attributes.get(
        chaos.DELAY_REQUESTED_MS, 0))
    return float(value) if isinstance(value, int | float) else 0.0


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.2g} ms"


def _label(span: SpanRecord) -> str:
    """``GET /users/17`` from the HTTP attributes of a span, else its name."""
    attributes = span.attributes
    method = attributes.get("http.request.method", attributes.get("http.method"))
    path = attributes.get("url.path")
    if path is None and (target := attributes.get("http.target")) is not None:
        path = str(target).split("?", 1)[0]
    if path is None:
        path = attributes.get("http.route")
    return f"{method} {path}" if method and path else span.name


def _status(span: SpanRecord) -> int | None:
    value = span.attributes.get("http.response.status_code",
                                span.attributes.get("http.status_code"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Destinations:
    """Names the server a client span called: the service that answered it beyond any proxy,
    else the service behind that proxy as other calls saw it, else the target's dependency,
    else the proxy itself (an aborted call never reached what is behind it)."""

    def __init__(self, tree: _Tree, dependency: str | None) -> None:
        self.tree = tree
        self.dependency = dependency
        self.behind: dict[str, str] = {}
        for span in tree.by_id.values():
            if _is_proxy(span):
                upstream = self._answered(span)
                if upstream:
                    self.behind.setdefault(span.service, upstream)

    def _answered(self, span: SpanRecord) -> str | None:
        return next((s.service for s in self.tree.descendants(span)
                     if s.kind == "server" and not _is_proxy(s) and s.service != span.service),
                    None)

    def of(self, call: SpanRecord) -> str:
        answered = self._answered(call)
        if answered:
            return answered
        proxy = next((s for s in self.tree.descendants(call) if _is_proxy(s)), None)
        if proxy is not None:
            return self.behind.get(proxy.service) or self.dependency or proxy.service
        if call.faulted and self.dependency:
            return self.dependency
        system = call.attributes.get("db.system")
        if system:
            return str(system)
        address = call.attributes.get("server.address", call.attributes.get("net.peer.name"))
        if address:
            port = call.attributes.get("server.port", call.attributes.get("net.peer.port"))
            return f"{address}:{port}" if port else str(address)
        return call.name


def _covered_ms(spans: Sequence[SpanRecord]) -> float:
    """Milliseconds covered by the union of the spans' intervals (attempts may overlap)."""
    total, reach = 0, None
    for span in sorted(spans, key=lambda s: s.start_ns):
        if reach is None or span.start_ns > reach:
            total += span.end_ns - span.start_ns
            reach = span.end_ns
        elif span.end_ns > reach:
            total += span.end_ns - reach
            reach = span.end_ns
    return total / 1e6


def _joined(label: str, values: Sequence[str]) -> str:
    return f"{label}{'s' if len(values) > 1 else ''} {', '.join(values)}"


def _injected(faulted: Sequence[SpanRecord]) -> str:
    """What gameday did to the trace: ``250 ms were injected by gameday (rule r-1, step 3)``."""
    # A delay is over when its span is: a caller that gave up cut it short (no applied delay
    # is recorded then, the requested one would overstate it).
    delays = [d for d in (min(_delay_ms(s), s.duration_ms) for s in faulted) if d]
    aborts = [str(s.attributes[chaos.ABORT_STATUS]) for s in faulted
              if chaos.ABORT_STATUS in s.attributes]
    parts = []
    if len(delays) > 1:
        # Attempts overlap in time (a retry starts while the proxy still holds the last one),
        # so a sum would read as longer than the request: say it per attempt.
        parts.append(f"{_ms(max(delays))} were injected into each of {len(delays)} attempts"
                     if max(delays) - min(delays) < 0.05 * max(delays) else
                     f"{_ms(min(delays))} to {_ms(max(delays))} were injected into each of "
                     f"{len(delays)} attempts")
    elif delays:
        parts.append(f"{_ms(delays[0])} were injected")
    if aborts:
        statuses = ", ".join(dict.fromkeys(aborts))
        parts.append(f"1 call was aborted with {statuses}" if len(aborts) == 1
                     else f"{len(aborts)} calls were aborted with {statuses}")
    if not parts:
        kinds = ", ".join(dict.fromkeys(str(s.attributes.get(chaos.FAULT, "a fault"))
                                        for s in faulted))
        parts.append(f"{kinds} was injected")
    rules = list(dict.fromkeys(rule for s in faulted
                               for rule in str(s.attributes.get(chaos.RULE, "")).split(",")
                               if rule))
    steps = list(dict.fromkeys(str(s.attributes[chaos.STEP]) for s in faulted
                               if chaos.STEP in s.attributes))
    where = [text for text in (_joined("rule", rules) if rules else "",
                               _joined("step", steps) if steps else "") if text]
    return " and ".join(parts) + " by gameday" + (f" ({', '.join(where)})" if where else "")


def _entry(tree: _Tree, anchor: SpanRecord, service: str | None) -> SpanRecord:
    """The request the trace is about: ``service``'s server span nearest the root on the way
    to ``anchor``, else the first server span there, else the root."""
    path = tree.path(anchor)
    servers = [s for s in path if s.kind == "server" and not _is_proxy(s)]
    mine = next((s for s in servers if s.service == service), None)
    if mine is None and service:  # no fault on the way: the service's first request
        mine = next((s for s, _ in tree.ordered if s.kind == "server"
                     and s.service == service), None)
    return mine or (servers[0] if servers else path[0])


def _operation(call: SpanRecord) -> str:
    """What a client span asked for: its method and path, or its statement (a Redis GET and
    the SET after it are two calls, not two attempts of one)."""
    attributes = call.attributes
    url = attributes.get("url.full", attributes.get("http.url"))
    path = attributes.get("url.path") or (urlsplit(str(url)).path if url else "")
    statement = attributes.get("db.statement", attributes.get("db.query.text", ""))
    return f"{call.name} {path} {statement}"


def _calls(tree: _Tree, below: Sequence[SpanRecord], dependency: str | None
           ) -> dict[tuple[str, str, str], list[SpanRecord]]:
    """Client spans by (parent, server called, operation): several under one key are
    attempts of one call, the service retrying."""
    destinations = _Destinations(tree, dependency)
    groups: dict[tuple[str, str, str], list[SpanRecord]] = {}
    for call in below:
        if call.kind == "client" and not _is_proxy(call):
            key = (call.parent_id, destinations.of(call), _operation(call))
            groups.setdefault(key, []).append(call)
    return groups


def _breaker_notes(tree: _Tree) -> list[str]:
    """A sentence per service and dependency whose circuit breaker rejected calls."""
    seen = [(s.service, str(e.attributes.get("dependency", ""))) for s, _ in tree.ordered
            for e in s.events if e.name == BREAKER_EVENT]
    notes = []
    for owner, towards in dict.fromkeys(seen):
        count = seen.count((owner, towards))
        rejected = "the call" if count == 1 else f"{count} calls"
        notes.append(f"{owner}'s circuit breaker{f' towards {towards}' if towards else ''} "
                     f"was open and rejected {rejected} without sending it.")
    return notes


def tell(spans: Sequence[SpanRecord], *, link: str | None = None, severity: int | None = None,
         service: str | None = None, dependency: str | None = None) -> TraceStory | None:
    """One trace in a sentence (and its waterfall); None without spans.

    ``service`` is the target service (whose request the sentence is about) and
    ``dependency`` what it calls through the fault, when the report knows them.
    """
    if not spans:
        return None
    tree = _tree(spans)
    faulted = [s for s, _ in tree.ordered if s.faulted]
    top = _entry(tree, faulted[0] if faulted else tree.ordered[0][0], service)
    below = list(tree.descendants(top))
    groups = _calls(tree, below, dependency)
    hit = {s.span_id for f in faulted for s in tree.path(f)}
    chosen = next(((name, calls) for (_, name, _), calls in groups.items()
                   if any(c.span_id in hit for c in calls)), None)

    status = _status(top)
    sentence = f"{_label(top)} took {_ms(top.duration_ms)}"
    if top.error or (status is not None and status >= 500):
        sentence += f" and failed ({status})" if status else " and failed"
    if chosen is not None:
        name, calls = chosen
        where = f"the call to {name}" if len(calls) == 1 else f"{len(calls)} attempts to {name}"
        sentence += f", of which {_ms(_covered_ms(calls))} in {where}"
    inside = {top.span_id} | {s.span_id for s in below}
    mine = [s for s in faulted if s.span_id in inside] or faulted
    sentence += f"; {_injected(mine)}." if mine else "; no fault of gameday shows in it."

    notes = [f"{len(calls)} attempts to {name}." for (_, name, _), calls in groups.items()
             if len(calls) > 1 and (chosen is None or calls is not chosen[1])]
    breaker = _breaker_notes(tree)
    return TraceStory(trace_id=top.trace_id, link=link, severity=severity, sentence=sentence,
                      notes=(*notes, *breaker), attempts=len(chosen[1]) if chosen else 0,
                      breaker_open=bool(breaker), bars=waterfall(spans, tree))


def waterfall(spans: Sequence[SpanRecord], tree: _Tree | None = None
              ) -> tuple[WaterfallBar, ...]:
    """A bar per span, parents above children, at most :data:`MAX_BARS` (the faulted spans,
    their ancestors and children first)."""
    tree = tree or _tree(spans)
    if not tree.ordered:
        return ()
    origin = min(s.start_ns for s, _ in tree.ordered)
    rows = list(tree.ordered)
    if len(rows) > MAX_BARS:
        wanted = {p.span_id for s, _ in rows if s.faulted for p in tree.path(s)}
        wanted |= {c.span_id for s, _ in rows if s.faulted for c in tree.kids.get(s.span_id, ())}
        room = MAX_BARS - len(wanted)
        for span, _ in rows:
            if room <= 0:
                break
            if span.span_id not in wanted:
                wanted.add(span.span_id)
                room -= 1
        rows = [(s, d) for s, d in rows if s.span_id in wanted][:MAX_BARS]
    bars = []
    for span, depth in rows:
        start = (span.start_ns - origin) / 1e6
        delay = min(_delay_ms(span), span.duration_ms) if span.faulted else 0.0
        injected_at = None
        if delay:
            event = next((e for e in span.events if e.name == chaos.INJECTED_EVENT
                          and span.start_ns <= e.time_ns <= span.end_ns), None)
            injected_at = (event.time_ns - origin) / 1e6 if event else start
            delay = min(delay, start + span.duration_ms - injected_at)
        marks = tuple(((e.time_ns - origin) / 1e6, e.name) for e in span.events
                      if e.name == BREAKER_EVENT)
        bars.append(WaterfallBar(label=f"{span.service}: {span.name}", service=span.service,
                                 depth=depth, start_ms=start, duration_ms=span.duration_ms,
                                 faulted=span.faulted, injected_start_ms=injected_at,
                                 injected_ms=delay, error=span.error, marks=marks))
    return tuple(bars)
