"""What a faulted trace says, and which traces a postmortem picks, from span records alone."""

from __future__ import annotations

from dataclasses import replace

from gameday.report.parts import ReportStep
from gameday.report.trace_parts import Exemplar
from gameday.report.trace_pick import (
    candidates,
    complete,
    faulted_state,
    focus_step,
    marked,
    top_exemplars,
)
from gameday.report.trace_story import MAX_BARS, tell, waterfall
from gameday.tracing.otlp import SpanRecord
from tests.report.traces import TRACE, faulted_attributes, request, span


def _step(severity: int, started: float, ended: float | None = None) -> ReportStep:
    return ReportStep(severity=severity, fault=f"latency {severity * 50}ms", dwell=20.0,
                      ttl=30.0, started=started, ended=ended, held=None, stopped_by=None,
                      metrics=(), signals=())


def test_a_delayed_call_is_told_with_its_injected_delay_rule_and_step() -> None:
    """The entry request, the time in the faulted call, and what gameday injected there."""
    story = tell(request(), link="https://traces.example/t/x", severity=3,
                 service="user-service", dependency="auth-service")
    assert story is not None
    assert story.sentence == ("GET /users/17 took 262 ms, of which 251 ms in the call to "
                              "auth-service; 250 ms were injected by gameday "
                              "(rule r-1f2e, step 3).")
    assert (story.trace_id, story.link, story.severity) == (TRACE, "https://traces.example/t/x", 3)
    assert (story.attempts, story.breaker_open, story.notes) == (1, False, ())


def test_retries_are_told_as_attempts_to_the_same_server() -> None:
    """Several client spans to the same server under one parent are one call's attempts."""
    story = tell(request(attempts=3), service="user-service")
    assert story is not None
    assert story.attempts == 3
    assert story.sentence == ("GET /users/17 took 766 ms, of which 753 ms in 3 attempts to "
                              "auth-service; 250 ms were injected into each of 3 "
                              "attempts by gameday (rule r-1f2e, step 3).")


def test_a_breaker_that_opened_is_told_and_the_request_failed() -> None:
    """A ``breaker.open`` event says the breaker rejected a call; the 503 says it failed."""
    story = tell(request(attempts=3, breaker=True), service="user-service")
    assert story is not None
    assert story.breaker_open
    assert story.sentence.startswith("GET /users/17 took 766 ms and failed (503), of which "
                                     "502 ms in 2 attempts to auth-service; 250 ms were "
                                     "injected into each of 2 attempts by gameday")
    assert story.notes == ("user-service's circuit breaker towards auth-service was open and "
                           "rejected the call without sending it.",)
    assert story.text == f"{story.sentence} {story.notes[0]}"


def test_an_abort_names_its_status_and_the_dependency_behind_the_proxy() -> None:
    """An aborted call never reaches the dependency: the report's dependency names it."""
    spans = [span("b1", "", "user-service", "GET /users/{user_id}", "server", 0, 4,
                  attributes={"http.method": "GET", "http.target": "/users/17?x=1",
                              "http.status_code": 502}),
             span("d1", "b1", "user-service", "POST", "client", 1, 3),
             span("e1", "d1", "auth-proxy", "chaos-proxy POST", "server", 1.1, 2.9,
                  attributes=faulted_attributes(delay_ms=0, step=2, abort=503))]
    story = tell(spans, dependency="auth-service")
    assert story is not None
    assert story.sentence == ("GET /users/17 took 4 ms and failed (502), of which 2 ms in the "
                              "call to auth-service; 1 call was aborted with 503 by gameday "
                              "(rule r-1f2e, step 2).")
    # Without the hint, the proxy's name stands for what is behind it.
    assert "in the call to auth-proxy;" in (tell(spans) or story).sentence


def test_the_client_span_itself_may_be_the_faulted_one() -> None:
    """The httpx transport marks the client's own span: that call is the faulted one."""
    spans = [span("b1", "", "user-service", "GET /users/{user_id}", "server", 0, 130,
                  attributes={"http.request.method": "GET", "url.path": "/users/3"}),
             span("d1", "b1", "user-service", "POST", "client", 2, 125,
                  attributes={**faulted_attributes(delay_ms=120, step=2),
                              "chaos.injector": "transport"})]
    story = tell(spans, dependency="auth-service")
    assert story is not None
    assert story.sentence == ("GET /users/3 took 130 ms, of which 123 ms in the call to "
                              "auth-service; 120 ms were injected by gameday "
                              "(rule r-1f2e, step 2).")


def test_waterfall_indents_by_depth_and_marks_the_injected_delay() -> None:
    """A bar per span in tree order; the proxy's bar carries its delay from the injection."""
    bars = waterfall(request())
    assert [(b.depth, b.label) for b in bars] == [
        (0, "loadgen: GET"), (1, "user-service: GET /users/{user_id}"),
        (2, "user-service: GET"), (2, "user-service: POST"),
        (3, "auth-proxy: chaos-proxy POST"), (4, "auth-service: POST /verify")]
    proxy = bars[4]
    assert proxy.faulted and proxy.injected_ms == 250.0
    assert proxy.injected_start_ms is not None and abs(proxy.injected_start_ms - 4.3) < 1e-6
    assert bars[0].start_ms == 0.0 and not any(b.injected_ms for b in bars if not b.faulted)


def test_waterfall_of_a_huge_trace_keeps_the_faulted_path() -> None:
    """Past ``MAX_BARS`` spans, the faulted span and its ancestors are still drawn."""
    noise = [span(f"n{i}", "b1", "user-service", f"redis GET {i}", "client", 1 + i * 0.01,
                  1.005 + i * 0.01) for i in range(100)]
    bars = waterfall(noise + request())
    assert len(bars) == MAX_BARS
    assert any(b.faulted for b in bars)
    assert [b.label for b in bars][:2] == ["loadgen: GET", "user-service: GET /users/{user_id}"]


def test_a_parent_cycle_does_not_hang_and_every_span_is_drawn() -> None:
    """Spans whose parents point at each other (a corrupt file) are drawn at the top."""
    spans = [span("x1", "x2", "a", "one", "internal", 0, 2),
             span("x2", "x1", "a", "two", "internal", 1, 3)]
    assert len(waterfall(spans)) == 2
    assert tell(spans) is not None


def test_exemplars_keep_the_slowest_one_per_trace() -> None:
    """Top five by latency, a trace seen by two buckets counted once at its slowest."""
    found = [Exemplar(f"t{i}", float(i), 100.0 + i) for i in range(8)]
    found.append(Exemplar("t1", 50.0, 90.0))
    kept = top_exemplars(found)
    assert [(e.trace_id, e.value_ms) for e in kept] == [
        ("t1", 50.0), ("t7", 7.0), ("t6", 6.0), ("t5", 5.0), ("t4", 4.0)]


def test_faulted_is_yes_no_or_unknown_by_the_trace_files() -> None:
    """Faulted when any span of the trace is; unknown without files or without the trace."""
    faulted, plain = request(trace="a" * 32), request(trace="b" * 32, delay_ms=0)
    plain = [replace(s, attributes={}) for s in plain]
    spans = faulted + plain
    assert faulted_state("a" * 32, spans) == "yes"
    assert faulted_state("b" * 32, spans) == "no"
    assert faulted_state("c" * 32, spans) == "unknown"
    assert faulted_state("a" * 32, None) == "unknown"
    (one,) = marked([Exemplar("a" * 32, 262.0, 1.0)], spans, lambda t: f"https://t/{t}")
    assert (one.faulted, one.link) == ("yes", f"https://t/{'a' * 32}")


def test_the_trace_is_for_the_step_that_broke_else_the_top_step() -> None:
    steps = [_step(1, 0.0), _step(2, 10.0), _step(3, 20.0)]
    assert focus_step(steps, 2) is steps[1]
    assert focus_step(steps, None) is steps[2]
    assert focus_step([], None) is None


def test_candidates_prefer_faulted_exemplars_then_the_steps_faulted_spans() -> None:
    """Faulted exemplars first, then faulted spans of that step and run (longest first),
    then exemplars not yet in the files; other steps, runs and unfaulted ones never."""
    at = 1_700_000_000.0
    step = _step(3, at, at + 20)

    def proxy(trace: str, start: float, end: float, severity: int = 3,
              run: str = "run-1") -> SpanRecord:
        return span("e1", "d1", "auth-proxy", "chaos-proxy POST", "server", start, end,
                    trace=trace, at=at, attributes=faulted_attributes(step=severity, run=run))

    spans = [proxy("short", 10, 20), proxy("long", 10, 400), proxy("other-step", 10, 900, 2),
             proxy("other-run", 10, 900, run="run-2"), proxy("too-late", 30_000, 30_100)]
    exemplars = [Exemplar("plain", 900.0, at + 1, "no"), Exemplar("seen", 500.0, at + 2, "yes"),
                 Exemplar("not-yet", 400.0, at + 3, "unknown")]
    assert candidates(step, exemplars, spans, "run-1") == ["seen", "long", "short", "not-yet"]


def test_a_trace_is_complete_with_its_root_and_its_faulted_span() -> None:
    spans = request()
    assert complete(spans)
    assert not complete([s for s in spans if s.parent_id])  # the root has not arrived
    assert not complete([s for s in spans if not s.faulted])
    assert not complete([])


def test_retries_towards_another_server_are_noted_apart() -> None:
    """The same Redis command twice under one parent is two attempts, told after the
    sentence; a different command to the same server is another call."""
    def redis(span_id: str, command: str, start: float) -> SpanRecord:
        return span(span_id, "b1", "user-service", command.split()[0], "client", start,
                    start + 0.5, attributes={"db.system": "redis", "db.statement": command,
                                             "net.peer.name": "127.0.0.1"})

    story = tell([*request(), redis("c2", "GET ?", 3.0)], service="user-service")
    assert story is not None and story.attempts == 1
    assert story.notes == ("2 attempts to redis.",)
    other = tell([*request(), redis("c2", "SET ? ?", 3.0)], service="user-service")
    assert other is not None and other.notes == ()


def test_a_trace_without_a_fault_says_so() -> None:
    spans = [replace(s, attributes={}) for s in request(delay_ms=0)]
    story = tell(spans)
    assert story is not None
    assert story.sentence.endswith("; no fault of gameday shows in it.")
    assert tell([]) is None
