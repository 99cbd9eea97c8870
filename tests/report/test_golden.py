"""Golden files: the markdown rendered from recorded journals, byte for byte.

Set ``GAMEDAY_UPDATE_GOLDEN=1`` to rewrite them after an intended change, then read the diff.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from gameday.report import render_markdown
from gameday.report.render import templates_dir
from tests.report.conftest import CASES, GOLDEN, report

DRAWN = ("latency", "errors")


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GAMEDAY_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with GAMEDAY_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file"


@pytest.mark.parametrize("case", CASES)
def test_markdown_matches_its_golden_file(case: str) -> None:
    """Each recorded run (passed, guard abort, rollback failed) renders exactly as recorded."""
    check(f"{case}.md", render_markdown(report(case), images=DRAWN))


def test_journal_only_markdown_matches_its_golden_file() -> None:
    """Without Prometheus the report renders from the journal and lists what is missing."""
    check("aborted-journal-only.md",
          render_markdown(report("aborted", with_prometheus=False), images=DRAWN))


def test_artifact_markdown_matches_its_golden_file() -> None:
    """The Prefect version names the chart files instead of embedding images."""
    text = render_markdown(report("aborted"), location="reports/out/run")
    assert "![" not in text
    check("aborted-artifact.md", text)


def test_rollback_failed_is_shown_first_and_loudly() -> None:
    """A failed rollback opens the postmortem with a caution block, before the title."""
    text = render_markdown(report("rollback_failed"))
    assert text.startswith("> [!CAUTION]\n> **🚨 ROLLBACK FAILED — FAULTS MAY REMAIN.**")
    assert text.index("[!CAUTION]") < text.index("# 🚨 Game day")


def _fields(template: str) -> set[tuple[str, str]]:
    """Every ``name.attribute`` read inside the template's tags."""
    tags = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", template, flags=re.S)
    return {(m.group(1), m.group(2)) for tag in tags
            for m in re.finditer(r"\b(r|s|g|c|m|sig|t|q|p95|p99|err)\.([a-z_0-9]+)", tag)}


def _misspelled(template: str, name: str, attribute: str) -> str:
    return re.sub(rf"\b{name}\.{attribute}\b", f"{name}.{attribute}_typo", template)


def test_a_misspelled_field_fails_rendering(tmp_path: Path) -> None:
    """Misspelling any field the template reads makes rendering fail (StrictUndefined)."""
    source = (templates_dir() / "postmortem.md.j2").read_text(encoding="utf-8")
    fields = _fields(source)
    assert len(fields) > 60, sorted(fields)
    reports = [report(case) for case in CASES]
    silent = []
    for name, attribute in sorted(fields):
        folder = tmp_path / f"{name}-{attribute}"
        folder.mkdir()
        (folder / "postmortem.md.j2").write_text(_misspelled(source, name, attribute))
        failed = False
        for built in reports:
            try:
                render_markdown(built, images=DRAWN, folder=folder)
            except UndefinedError:
                failed = True
                break
        if not failed:
            silent.append(f"{name}.{attribute}")
        shutil.rmtree(folder)
    assert silent == [], f"misspelling these rendered without error: {silent}"


def test_one_misspelled_field_names_itself(tmp_path: Path) -> None:
    """The error of a misspelled field names the field that does not exist."""
    source = (templates_dir() / "postmortem.md.j2").read_text(encoding="utf-8")
    (tmp_path / "postmortem.md.j2").write_text(source.replace("r.highest_held", "r.highest_hled"))
    with pytest.raises(UndefinedError, match="highest_hled"):
        render_markdown(report("passed"), folder=tmp_path)
