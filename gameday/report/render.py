"""Rendering the report model: markdown through Jinja2 with ``StrictUndefined``.

A misspelled field in a template is an error, not an empty string.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gameday.report.model import GameDayReport


def templates_dir() -> Path:
    """``$GAMEDAY_TEMPLATES``, else the checkout's ``reports/templates``."""
    env = os.environ.get("GAMEDAY_TEMPLATES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "reports" / "templates"


def _ts(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S")


def _date(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}g}"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def jinja(folder: Path | None = None) -> Environment:
    """The Jinja2 environment postmortems are rendered with."""
    env = Environment(loader=FileSystemLoader(folder or templates_dir()),
                      undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(ts=_ts, date=_date, num=_num, signed=_signed, secs=_secs)
    return env


def render_markdown(report: GameDayReport, template: str = "postmortem.md.j2",
                    folder: Path | None = None, charts: list[tuple[str, str, str]] | None = None
                    ) -> str:
    """The postmortem as markdown; ``charts`` are (title, file name, PromQL link) triples."""
    return jinja(folder).get_template(template).render(r=report, charts=charts or [])


def write_report(report: GameDayReport, out_dir: Path,
                 charts: list[tuple[str, str, str]] | None = None) -> Path:
    """Render the postmortem into ``out_dir/postmortem.md`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "postmortem.md"
    path.write_text(render_markdown(report, charts=charts), encoding="utf-8")
    return path
