"""The report holds no secret from the environment: not in markdown, artifact or history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gameday.notes import ErrorNote
from gameday.report import build_report, render_markdown, write_report
from gameday.report.history import finding, record
from tests.report.conftest import journal, observed

SECRET = "tok-9f8e7d6c5b4a"


def test_secrets_of_the_environment_never_reach_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token exported in the environment is redacted wherever the journal let it through."""
    monkeypatch.setenv("GAMEDAY_PROXY_TOKEN", SECRET)
    monkeypatch.setenv("GAMEDAY_HISTORY", str(tmp_path / "history"))
    # Events built in memory skip the journal's own redaction: the report must not rely on it.
    events = [*journal("aborted"),
              ErrorNote(message=f"proxy said: bad token {SECRET}")]
    built = build_report(events, observed=observed("aborted"),
                         prometheus_url="http://gd:pa55w0rd-x@127.0.0.1:9090")
    assert any(SECRET in t.text for t in built.timeline)  # it was there to leak
    path = write_report(built, tmp_path / "out")
    artifact = render_markdown(built, location=str(path.parent))
    history = record(finding(built, path))
    assert history is not None
    for text in (path.read_text(), artifact, history.read_text()):
        assert SECRET not in text
        assert "pa55w0rd" not in text
    assert "[redacted]" in path.read_text()


def test_observed_prometheus_url_loses_its_credentials() -> None:
    """Chart links use the Prometheus URL without a user or password."""
    seen = dataclasses.replace(observed("passed"), prometheus_url=None)
    built = build_report(journal("passed"), observed=seen,
                         prometheus_url="https://ops:hunter2-long@prom.example")
    assert all(c.link and "hunter2" not in c.link for c in built.charts)
    assert "hunter2" not in render_markdown(built)
