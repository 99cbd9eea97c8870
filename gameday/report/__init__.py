"""Postmortems: a pure report model built from a run's journal, rendered with Jinja2."""

from gameday.report.model import GameDayReport, build_report
from gameday.report.render import render_markdown, write_report

__all__ = ["GameDayReport", "build_report", "render_markdown", "write_report"]
