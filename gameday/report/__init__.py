"""Postmortems: a pure report model built from a run's journal and what Prometheus saw,
rendered with Jinja2, drawn with matplotlib, and kept in the catalog's history."""

from gameday.report.model import GameDayReport, build_report, run_window
from gameday.report.observed import Observed, Series, observed_from_json, observed_to_json
from gameday.report.render import render_markdown, write_report

__all__ = ["GameDayReport", "Observed", "Series", "build_report", "observed_from_json",
           "observed_to_json", "render_markdown", "run_window", "write_report"]
