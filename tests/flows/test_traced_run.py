"""A traced game day on the demo: the auth ladder's faulted requests are spans of auth-proxy
with the chaos.* attributes, children of user-service's call spans, with the delay of their
step; the run is a trace of its own; the postmortem has the exemplar table and a waterfall."""

from __future__ import annotations

import statistics
from collections import defaultdict

import pytest

from gameday.demo.state import TRACE_DIR
from gameday.notes import TraceNote
from gameday.tracing import read
from gameday.tracing.otlp import SpanRecord
from tests.flows.conftest import Bench, dump, outcome

pytestmark = pytest.mark.integration


def test_a_traced_ladder_leaves_its_faults_in_the_traces(bench: Bench) -> None:
    code, out = bench.run("quick-trip")  # 20 ms, then 450 ms: the second step breaks
    assert code == 4, out
    [(run, events)] = bench.journals().items()
    assert outcome(events) == "aborted", dump(events)
    [note] = [e for e in events if isinstance(e, TraceNote)]
    folder = bench.stack.state_dir / TRACE_DIR
    started = events[0].at

    # The faulted requests of this run, as auth-proxy recorded them.
    spans = read.spans(folder, since=started)
    by_id = {span.span_id: span for span in spans}
    faulted = [s for s in spans if s.faulted and s.attributes.get("chaos.run") == run]
    assert faulted, "no faulted span of the run in the trace files"
    by_step: dict[int, list[SpanRecord]] = defaultdict(list)
    for span in faulted:
        assert span.service == "auth-proxy" and span.name == "chaos-proxy GET"
        assert span.attributes["chaos.scenario"] == "quick-trip"
        assert span.attributes["chaos.environment"] == "demo"
        assert span.attributes["chaos.fault"] == "latency"
        assert str(span.attributes["chaos.rule"]).startswith("r-")
        by_step[int(span.attributes["chaos.step"])].append(span)  # type: ignore[arg-type]
    assert set(by_step) == {1, 2}
    for step, wanted in ((1, 20), (2, 450)):
        assert all(s.attributes["chaos.delay.requested_ms"] == wanted for s in by_step[step])
        # Applied as asked, but for the few requests whose rule ended mid-delay (the next
        # step replaced it, or rollback): those are let go at once, as they must be.
        applied = sorted(float(s.attributes["chaos.delay.applied_ms"])  # type: ignore[arg-type]
                         for s in by_step[step] if "chaos.delay.applied_ms" in s.attributes)
        assert applied and statistics.median(applied) >= wanted - 1, (step, applied)
        assert applied[-1] < wanted + 1000, (step, applied)
    # Children of user-service's call spans (where the caller's span was recorded).
    parents = [by_id[s.parent_id] for s in faulted if s.parent_id in by_id]
    assert parents, "no faulted span whose caller's span is in the files"
    for parent in parents:
        assert parent.service == "user-service" and parent.kind == "client"
        assert parent.trace_id == by_id[parent.span_id].trace_id

    # The game day's own trace.
    own = read.trace(folder, note.trace_id)
    [root] = [s for s in own if not s.parent_id]
    assert root.service == "gameday" and root.name == "game day quick-trip"
    assert root.attributes["chaos.run"] == run and root.error
    names = [s.name for s in own]
    assert {"prepare", "step 1", "step 2", "rollback", "learn"} <= set(names)
    [broken] = [s for s in own if s.name == "step 2"]
    assert broken.error and "guard breached" in [e.name for e in broken.events]

    # The postmortem: the run's trace id, the exemplar table, a faulted trace drawn and told.
    report_dir = next((bench.root / "reports").glob("*/postmortem.md")).parent
    report = (report_dir / "postmortem.md").read_text()
    assert note.trace_id in report
    evidence = report.split("## Trace evidence", 1)[1].split("\n## ", 1)[0]
    assert "| trace | latency ms | faulted | time |" in evidence, evidence
    assert "| yes |" in evidence, evidence
    assert "were injected" in evidence and "by gameday (rule r-" in evidence, evidence
    assert "step 2)." in evidence, evidence
    assert "(trace.png)" in evidence, evidence
    image = (report_dir / "trace.png").read_bytes()
    assert image.startswith(b"\x89PNG") and len(image) > 10_000
