"""The waterfall of a faulted trace: a PNG beside the charts, a bar per span indented by depth,
the injected delay and the breaker marked; and the template's trace fields all checked."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from gameday.report import GameDayReport, render_markdown, write_report
from gameday.report.render import templates_dir
from gameday.report.trace_chart import INDENT, waterfall_figure, write_trace_chart
from gameday.report.trace_parts import (
    Exemplar,
    RunTrace,
    StepExemplars,
    TraceEvidence,
    TraceStory,
)
from gameday.report.trace_story import tell
from tests.report.conftest import report
from tests.report.traces import TRACE, request

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _story(**options: object) -> TraceStory:
    story = tell(request(**options), link=f"https://t.example/{TRACE}",  # type: ignore[arg-type]
                 severity=3, service="user-service", dependency="auth-service")
    assert story is not None
    return story


def _evidence(story: TraceStory | None) -> TraceEvidence:
    return TraceEvidence(
        steps=(StepExemplars(1, "latency 50ms", (Exemplar("1" * 32, 12.0, 1.0, "no"),)),
               StepExemplars(2, "latency 120ms", (), "Prometheus kept no exemplar"),
               StepExemplars(3, "latency 250ms", (
                   Exemplar(TRACE, 262.4, 2.0, "yes", f"https://t.example/{TRACE}"),))),
        exemplars_missing="", story=story,
        unavailable="" if story else "the trace folder /x does not exist", severity=3)


def test_the_waterfall_is_a_png_of_plausible_size(tmp_path: Path) -> None:
    path = write_trace_chart(_story(), tmp_path)
    assert path == tmp_path / "trace.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 2_000_000


def test_a_bar_per_span_labels_indented_by_depth_and_the_delay_hatched() -> None:
    """Two faulted attempts hatched, the breaker's event marked, deeper spans further right."""
    story = _story(attempts=3, breaker=True)
    fig = waterfall_figure(story)
    names, bars = fig.axes
    drawn = [p for p in bars.patches if str(p.get_gid()).startswith("span-")]
    assert len(drawn) == len(story.bars) == 9
    injected = [p for p in bars.patches if p.get_gid() == "injected"]
    assert [round(p.get_width(), 3) for p in injected] == [250.0, 250.0]
    assert sum(line.get_gid() == "mark" for line in bars.lines) == 1
    labels = {t.get_gid(): t for t in names.texts}
    assert [bar.depth for bar in story.bars] == [0, 1, 2, 2, 3, 4, 2, 3, 4]
    for row, bar in enumerate(story.bars):
        x = labels[f"label-{row}"].get_position()[0]
        assert x == pytest.approx(0.01 + INDENT * bar.depth)
    assert labels["label-1"].get_text() == "user-service: GET /users/{user_id}"


def test_write_report_draws_the_trace_beside_the_charts(tmp_path: Path) -> None:
    built = replace(report("aborted"), trace=_evidence(_story()))
    path = write_report(built, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"postmortem.md", "latency.png",
                                                     "errors.png", "trace.png"}
    assert "](trace.png)" in path.read_text()
    undrawn = write_report(built, tmp_path / "undrawn", charts=False)
    assert not (undrawn.parent / "trace.png").exists()
    assert "Waterfall: `trace.png`, not drawn." in undrawn.read_text()


def test_no_story_no_trace_png(tmp_path: Path) -> None:
    write_report(replace(report("aborted"), trace=_evidence(None)), tmp_path)
    assert not (tmp_path / "trace.png").exists()


def _reports() -> list[GameDayReport]:
    """Reports that between them reach every trace field of the template."""
    base = report("aborted")
    return [replace(base, trace=_evidence(_story()),
                    run_trace=RunTrace("0" * 32, "https://t.example/" + "0" * 32)),
            replace(base, trace=replace(_evidence(None), exemplars_missing="not set"),
                    run_trace=RunTrace("0" * 32, None))]


def test_the_trace_section_renders_the_exemplars_and_the_story() -> None:
    text = render_markdown(_reports()[0], images=("trace",))
    assert "| Trace of the game day | [`" + "0" * 32 + "`](https://t.example/" in text
    assert f"| [`{TRACE}`](https://t.example/{TRACE}) | 262 | yes | " in text
    assert "| `" + "1" * 32 + "` | 12 | no | " in text
    assert "**Step 2** (latency 120ms):\nno exemplar: Prometheus kept no exemplar." in text
    other = render_markdown(_reports()[1])
    assert "Trace unavailable: the trace folder /x does not exist." in other
    assert "| Trace of the game day | `" + "0" * 32 + "` |" in other


def test_a_misspelled_trace_field_fails_rendering(tmp_path: Path) -> None:
    """Every field the trace section reads is checked, as the golden test checks the rest."""
    source = (templates_dir() / "postmortem.md.j2").read_text(encoding="utf-8")
    tags = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", source, flags=re.S)
    fields = {(m.group(1), m.group(2)) for tag in tags
              for m in re.finditer(r"\b(rt|tr|se|ex|st)\.([a-z_0-9]+)", tag)}
    assert len(fields) >= 15, sorted(fields)
    reports = _reports()
    silent = []
    for name, attribute in sorted(fields):
        folder = tmp_path / f"{name}-{attribute}"
        folder.mkdir()
        (folder / "postmortem.md.j2").write_text(
            re.sub(rf"\b{name}\.{attribute}\b", f"{name}.{attribute}_typo", source))
        failed = False
        for built in reports:
            try:
                render_markdown(built, images=("trace",), folder=folder)
            except UndefinedError:
                failed = True
                break
        if not failed:
            silent.append(f"{name}.{attribute}")
        shutil.rmtree(folder)
    assert silent == [], f"misspelling these rendered without error: {silent}"


@pytest.mark.parametrize("field", ["r.run_trace", "r.trace"])
def test_the_reports_trace_fields_are_read_by_every_report(tmp_path: Path, field: str) -> None:
    """Read at the top of the template, so a misspelling fails even without a trace."""
    source = (templates_dir() / "postmortem.md.j2").read_text(encoding="utf-8")
    (tmp_path / "postmortem.md.j2").write_text(source.replace(field, f"{field}_typo"))
    with pytest.raises(UndefinedError):
        render_markdown(report("passed"), folder=tmp_path)
