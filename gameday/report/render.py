"""Rendering the report model: markdown through Jinja2 with ``StrictUndefined``.

A misspelled field in a template is an error, not an empty string. The same template gives
the file next to the charts and the Prefect artifact (whose page cannot load local images,
so it names the chart files and keeps their Prometheus links instead).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined

from gameday.errors import ConfigError
from gameday.redact import redact, secret_values
from gameday.report.model import GameDayReport

BREAKER = {0.0: "closed", 1.0: "half-open", 2.0: "open"}
#: The key of the trace's waterfall among the images drawn (beside the charts' keys).
TRACE_IMAGE = "trace"


def templates_dir() -> Path:
    """``$GAMEDAY_TEMPLATES``, else the checkout's ``reports/templates``."""
    env = os.environ.get("GAMEDAY_TEMPLATES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "reports" / "templates"


def _defined(value: object) -> None:
    """Fail like the template would: a filter given an undefined field is a template error."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the missing field


def _ts(value: float | None) -> str:
    _defined(value)
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S")


def _date(value: float | None) -> str:
    _defined(value)
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 3) -> str:
    _defined(value)
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def _signed(value: float | None, digits: int = 3) -> str:
    _defined(value)
    if value is None:
        return "—"
    return f"{value:+.{digits}g}"


def _ms(value: float | None) -> str:
    """Milliseconds: whole ones, but a sub-10 ms value keeps two digits."""
    _defined(value)
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _secs(value: float | None) -> str:
    _defined(value)
    return "—" if value is None else f"{value:.1f} s"


def _offset(value: float, origin: float | None) -> str:
    """``value`` relative to ``origin`` (the first step's start), as ``T+12.3s``."""
    _defined(value)
    _defined(origin)
    if origin is None:
        return ""
    delta = value - origin
    return f"T{'+' if delta >= 0 else '−'}{abs(delta):.1f}s"


def _cell(value: object) -> str:
    """Text safe inside a markdown table cell: no pipes, no line breaks."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _breaker(value: float | None) -> str:
    _defined(value)
    return "—" if value is None else BREAKER.get(value, f"{value:g}")


def _link(target: str | None) -> str:
    """A URL as a link; a repository path as code (it resolves in the checkout, not here)."""
    if not target:
        return "—"
    if target.startswith(("http://", "https://")):
        return f"[{target}]({target})"
    return f"`{target}` (in the repository)"


def jinja(folder: Path | None = None) -> Environment:
    """The Jinja2 environment postmortems are rendered with."""
    env = Environment(loader=FileSystemLoader(folder or templates_dir()),
                      undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(ts=_ts, date=_date, num=_num, signed=_signed, secs=_secs,
                       offset=_offset, cell=_cell, breaker=_breaker, link=_link,
                       ms=_ms)
    return env


def scrub(text: str) -> str:
    """``text`` with the values of secret-looking environment variables replaced.

    The journal is redacted as it is written; this catches anything that reached a report
    another way (a journal of an older version, a secret exported after the run).
    """
    scrubbed: str = redact(text, secret_values())
    return scrubbed


def render_markdown(report: GameDayReport, *, images: Collection[str] = (),
                    location: str | None = None, template: str = "postmortem.md.j2",
                    folder: Path | None = None) -> str:
    """The postmortem as markdown.

    ``images`` are the keys of charts whose PNG lies next to the markdown; other charts are
    named by file (``location`` says where they lie) with their Prometheus link.
    """
    text = jinja(folder).get_template(template).render(r=report, images=set(images),
                                                        location=location)
    return scrub(text)


def write_report(report: GameDayReport, out_dir: Path, charts: bool = True) -> Path:
    """Draw the charts, the faulted trace's waterfall and the breaking-point search's probes
    (unless told not to) and render ``out_dir/postmortem.md``; return the markdown's path.

    Without matplotlib the postmortem is still written, naming its charts by link only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    if charts:
        try:
            from gameday.report.breaking_chart import BREAKING_IMAGE, write_breaking_chart
            from gameday.report.charts import write_charts
            from gameday.report.trace_chart import write_trace_chart

            drawn = [chart.key for chart in write_charts(report, out_dir)]
            story = report.trace.story if report.trace else None
            if story is not None and story.bars:
                step = f", step {story.severity}" if story.severity is not None else ""
                write_trace_chart(story, out_dir, f"{report.scenario}{step}")
                drawn.append(TRACE_IMAGE)
            search = report.search
            if search is not None and search.probes:
                write_breaking_chart(search, out_dir, report.scenario)
                drawn.append(BREAKING_IMAGE)
        except ConfigError:
            drawn = []
    path = out_dir / "postmortem.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_markdown(report, images=drawn), encoding="utf-8")
    tmp.replace(path)  # readers never see half a postmortem
    return path
