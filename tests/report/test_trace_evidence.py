"""The postmortem's trace evidence: exemplars of each step from a real Prometheus, whether each
was faulted by the trace files, one faulted trace drawn and told, and every way it can be
unavailable without failing the report."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gameday.journal import Journal
from gameday.models import Environment, PrometheusSettings
from gameday.models.environment import TracingSettings
from gameday.notes import TraceNote
from gameday.protocol.learn import learn
from gameday.report import GameDayReport, render_markdown, write_report
from gameday.report.trace_evidence import trace_evidence
from gameday.report.trace_parts import TraceEvidence
from tests.report.conftest import DATA, report
from tests.report.exemplar_stack import ExemplarStack, Kept, exemplar_prometheus
from tests.report.traces import request, write_spans

__all__ = ["exemplar_prometheus"]

RUN = "ddacbc80-5080-4117-9dc0-ed9fccc5f868"  # the recorded guard abort, broken at step 3
TRACE_URL = "https://traces.example/trace/{trace_id}"
SELECTOR = 'service_request_duration_seconds_bucket{service="%s"}'
GAME_DAY_TRACE = "0af7651916cd43dd8448eb211c80319c"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _environment(prometheus_url: str, files: Path | None, service: str | None,
                 trace_url: str | None = TRACE_URL) -> Environment:
    return Environment(name="demo", prometheus=PrometheusSettings(url=prometheus_url),
                       tracing=TracingSettings(files=str(files) if files else None,
                                               exemplars=SELECTOR % service if service else None,
                                               trace_url=trace_url))


def _evidence(built: GameDayReport, environment: Environment, wait: float = 0.5,
              prometheus: bool = True) -> TraceEvidence:
    found = asyncio.run(trace_evidence(built, environment, prometheus=prometheus, wait=wait))
    assert found is not None
    return found


@pytest.fixture(scope="module")
def recorded(exemplar_prometheus: ExemplarStack, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[GameDayReport, Path]:
    """The aborted run's report, exemplars of its steps in Prometheus and its traces in files:

    step 1 one unfaulted request; step 2 nothing; step 3 a retried faulted request, a faulted
    one, an unfaulted one and three whose traces never reached the files.
    """
    built = report("aborted")
    one, _, three = built.steps
    folder = tmp_path_factory.mktemp("traces")
    plain = [replace(s, attributes={k: v for k, v in s.attributes.items()
                                    if not k.startswith("chaos.")})
             for s in request(trace="1" * 32, at=one.started + 2, delay_ms=0, step=1, run=RUN)]
    write_spans(folder, plain, "user-service")
    write_spans(folder, request(trace="a" * 32, at=three.started + 1, attempts=3, run=RUN,
                                prefix="1"), "user-service")
    write_spans(folder, request(trace="b" * 32, at=three.started + 2, run=RUN, prefix="2"),
                "auth-proxy")
    write_spans(folder, [replace(s, attributes={}) for s in request(
        trace="c" * 32, at=three.started + 2.5, delay_ms=0, run=RUN, prefix="3")], "loadgen")
    exemplar_prometheus.keep(
        Kept("recorded", "1" * 32, 0.012, one.started + 2),
        Kept("recorded", "a" * 32, 0.766, three.started + 1.8),
        Kept("recorded", "b" * 32, 0.262, three.started + 2.3),
        Kept("recorded", "c" * 32, 0.004, three.started + 2.6),
        Kept("recorded", "d" * 32, 0.5, three.started + 3),
        Kept("recorded", "e" * 32, 0.3, three.started + 3.2),
        Kept("recorded", "f" * 32, 0.001, three.started + 3.4))
    return built, folder


@pytest.mark.integration
def test_each_step_lists_its_slowest_exemplars_and_whether_they_were_faulted(
        recorded: tuple[GameDayReport, Path], exemplar_prometheus: ExemplarStack) -> None:
    built, folder = recorded
    evidence = _evidence(built, _environment(exemplar_prometheus.url, folder, "recorded"))
    one, two, three = evidence.steps
    assert [(e.trace_id, e.value_ms, e.faulted) for e in one.exemplars] == [
        ("1" * 32, 12.0, "no")]
    assert (two.exemplars, two.missing) == (
        (), "Prometheus kept no exemplar of the histogram over this step")
    assert [(e.trace_id[0], round(e.value_ms), e.faulted) for e in three.exemplars] == [
        ("a", 766, "yes"), ("d", 500, "unknown"), ("e", 300, "unknown"), ("b", 262, "yes"),
        ("c", 4, "no")]
    assert three.exemplars[0].link == f"https://traces.example/trace/{'a' * 32}"
    assert evidence.exemplars_missing == ""


@pytest.mark.integration
def test_the_broken_steps_slowest_faulted_trace_is_drawn_and_told(
        recorded: tuple[GameDayReport, Path], exemplar_prometheus: ExemplarStack,
        tmp_path: Path) -> None:
    """Step 3 broke: its slowest faulted exemplar is a retried call, told and drawn."""
    built, folder = recorded
    evidence = _evidence(built, _environment(exemplar_prometheus.url, folder, "recorded"))
    story = evidence.story
    assert story is not None and evidence.unavailable == ""
    assert (evidence.severity, story.trace_id, story.attempts) == (3, "a" * 32, 3)
    assert story.sentence == ("GET /users/17 took 766 ms, of which 753 ms in 3 attempts to "
                              "auth-service; 250 ms were injected into each of 3 "
                              "attempts by gameday (rule r-1f2e, step 3).")
    path = write_report(replace(built, trace=evidence), tmp_path)
    png = (tmp_path / "trace.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) < 2_000_000
    text = path.read_text()
    section = text[text.index("## Trace evidence"):text.index("## Suggested learnings")]
    assert "**Step 2** (latency 120ms ±5ms):\nno exemplar: Prometheus kept no exemplar" in section
    assert (f"| [`{'a' * 32}`](https://traces.example/trace/{'a' * 32}) | 766 | yes | "
            in section)
    assert "### A faulted trace of step 3" in section
    assert story.sentence in section
    assert "![Waterfall of trace" in section and "](trace.png)" in section
    artifact = render_markdown(replace(built, trace=evidence), location="reports/out/x")
    assert "Waterfall: `trace.png` in `reports/out/x`" in artifact


@pytest.mark.integration
def test_a_trace_that_never_reaches_the_files_is_unavailable(
        exemplar_prometheus: ExemplarStack, tmp_path: Path) -> None:
    """Only exemplars whose traces are not in the files: waited for, then said so."""
    built = report("aborted")
    three = built.steps[2]
    exemplar_prometheus.keep(Kept("never", "9" * 32, 0.4, three.started + 1))
    write_spans(tmp_path, [replace(s, attributes={}) for s in request(trace="8" * 32)])
    evidence = _evidence(built, _environment(exemplar_prometheus.url, tmp_path, "never"),
                         wait=0.3)
    assert evidence.story is None
    assert evidence.unavailable == f"trace {'9' * 32} did not reach the trace files within 0.3 s"
    assert [e.faulted for e in evidence.steps[2].exemplars] == ["unknown"]
    text = render_markdown(replace(built, trace=evidence))
    assert f"Trace unavailable: trace {'9' * 32} did not reach the trace files" in text


def test_a_trace_whose_root_never_arrives_is_unavailable(tmp_path: Path) -> None:
    """The faulted span is there but not the root: not complete, so not told."""
    built = report("aborted")
    spans = request(trace="7" * 32, at=built.steps[2].started + 1, run=RUN)
    write_spans(tmp_path, [s for s in spans if s.parent_id])
    evidence = _evidence(built, _environment("http://127.0.0.1:9", tmp_path, None), wait=0.2)
    assert evidence.unavailable == (f"trace {'7' * 32}: its root span did not reach the trace "
                                    "files within 0.2 s")


@pytest.mark.parametrize("setup, reason", [
    ("missing", "the trace folder {folder} does not exist"),
    ("no files", "no trace files (*.otlp.jsonl) in {folder}"),
    ("empty", "the trace files in {folder} are empty"),
    ("no faulted", "no faulted trace of step 3 in the trace files ({folder})"),
])
def test_missing_or_empty_trace_files_make_the_trace_unavailable(
        tmp_path: Path, setup: str, reason: str) -> None:
    """Never a failure: the section says why there is no trace."""
    folder = tmp_path / "traces"
    if setup != "missing":
        folder.mkdir()
    if setup == "empty":
        (folder / "user-service.otlp.jsonl").write_text("")
    if setup == "no faulted":
        write_spans(folder, [replace(s, attributes={}) for s in request()])
    built = report("aborted")
    evidence = _evidence(built, _environment("http://127.0.0.1:9", folder, None))
    assert evidence.story is None and evidence.unavailable == reason.format(folder=folder)
    assert evidence.exemplars_missing == "`tracing.exemplars` is not set in the environment"
    text = render_markdown(replace(built, trace=evidence))
    assert f"Trace unavailable: {reason.format(folder=folder)}." in text
    assert "No exemplars: `tracing.exemplars` is not set in the environment." in text


def test_files_alone_give_a_trace_of_the_steps_faulted_spans(tmp_path: Path) -> None:
    """Without an exemplar histogram the trace comes from the files' faulted spans."""
    built = report("aborted")
    write_spans(tmp_path, request(trace="6" * 32, at=built.steps[2].started + 1, run=RUN))
    write_spans(tmp_path, request(trace="5" * 32, at=built.steps[2].started + 1,
                                  run="another-run", delay_ms=900, prefix="x"))
    evidence = _evidence(built, _environment("http://127.0.0.1:9", tmp_path, None,
                                             trace_url=None), prometheus=False)
    assert evidence.story is not None and evidence.story.trace_id == "6" * 32
    assert evidence.story.link is None


def test_exemplars_without_files_are_unknown_and_prometheus_unasked_says_so(
        tmp_path: Path) -> None:
    built = report("aborted")
    unasked = _evidence(built, _environment("http://127.0.0.1:9", None, "x"), prometheus=False)
    assert unasked.exemplars_missing == "Prometheus was not asked (journal only)"
    assert unasked.unavailable == "`tracing.files` is not set: spans cannot be read back"
    gone = _evidence(built, _environment("http://127.0.0.1:9", None, "x"))
    assert gone.exemplars_missing.startswith("Prometheus at http://127.0.0.1:9 did not answer")
    assert all(s.missing == gone.exemplars_missing for s in gone.steps)


def test_without_tracing_settings_there_is_no_trace_section(tmp_path: Path) -> None:
    built = report("aborted")
    plain = Environment(name="demo", prometheus=PrometheusSettings(url="http://127.0.0.1:9"))
    assert asyncio.run(trace_evidence(built, plain)) is None
    assert "Trace evidence" not in render_markdown(built)
    assert "Trace of the game day" not in render_markdown(built)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """State, reports, catalog and history in tmp, holding the aborted run's journal with the
    game day's own trace noted."""
    runs = tmp_path / "state" / "runs" / RUN
    runs.mkdir(parents=True)
    shutil.copy(DATA / "aborted.journal.jsonl", runs / "journal.jsonl")
    with Journal(runs / "journal.jsonl") as journal:
        journal.write(TraceNote(message="traced", trace_id=GAME_DAY_TRACE,
                                destinations=[str(tmp_path / "traces")]))
    (tmp_path / "catalog").mkdir()
    for name, value in {"GAMEDAY_STATE": "state", "GAMEDAY_REPORTS": "reports",
                        "GAMEDAY_CATALOG": "catalog", "GAMEDAY_HISTORY": "history"}.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    return tmp_path


def test_learn_writes_the_trace_evidence_and_the_game_days_trace(folders: Path) -> None:
    """The learn phase: the run's trace id (linked) in the header, the waterfall beside the
    charts, the exemplars' absence explained (Prometheus is gone here)."""
    traces = folders / "traces"
    built = report("aborted")
    write_spans(traces, request(at=built.steps[2].started + 1, run=RUN))
    environment = _environment("http://127.0.0.1:9", traces, "user-service")
    learned = asyncio.run(learn(RUN, environment=environment, history=False))
    text = learned.path.read_text()
    assert (f"| Trace of the game day | [`{GAME_DAY_TRACE}`]"
            f"(https://traces.example/trace/{GAME_DAY_TRACE}) |") in text
    assert (learned.path.parent / "trace.png").stat().st_size > 10_000
    assert "GET /users/17 took 262 ms, of which 251 ms in the call to auth-service; 250 ms " \
           "were injected by gameday (rule r-1f2e, step 3)." in text
    assert "No exemplars: Prometheus at http://127.0.0.1:9 did not answer" in text


def test_learn_without_charts_does_not_wait_or_draw(folders: Path) -> None:
    """A run that must end at once takes what the files hold: here a trace without its root."""
    traces = folders / "traces"
    spans = request(trace="4" * 32, at=report("aborted").steps[2].started + 1, run=RUN)
    write_spans(traces, [s for s in spans if s.parent_id])
    environment = _environment("http://127.0.0.1:9", traces, None)
    began = time.monotonic()
    learned = asyncio.run(learn(RUN, environment=environment, history=False, charts=False))
    assert time.monotonic() - began < 5
    assert not (learned.path.parent / "trace.png").exists()
    assert (f"Trace unavailable: trace {'4' * 32}: its root span did not reach the trace "
            "files yet (not waited for).") in learned.path.read_text()


def test_the_trace_evidence_needs_no_opentelemetry(tmp_path: Path) -> None:
    """With OpenTelemetry unimportable, the evidence is read, told and rendered."""
    write_spans(tmp_path, request(at=report("aborted").steps[2].started + 1, run=RUN))
    script = textwrap.dedent(f"""
        import asyncio, sys
        from dataclasses import replace

        class NoOpenTelemetry:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("no OpenTelemetry here")
                return None

        sys.meta_path.insert(0, NoOpenTelemetry())
        from gameday.models import Environment, PrometheusSettings
        from gameday.models.environment import TracingSettings
        from gameday.report import render_markdown
        from gameday.report.trace_evidence import trace_evidence
        from tests.report.conftest import report

        built = report("aborted")
        environment = Environment(name="demo", prometheus=PrometheusSettings(
            url="http://127.0.0.1:9"), tracing=TracingSettings(files={str(tmp_path)!r}))
        evidence = asyncio.run(trace_evidence(built, environment, prometheus=False, wait=0))
        text = render_markdown(replace(built, trace=evidence))
        assert "250 ms were injected by gameday" in text, text
        assert not any(m.startswith("opentelemetry") for m in sys.modules)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
