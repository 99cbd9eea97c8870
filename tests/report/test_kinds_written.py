"""Every note and notice class that something reads is written somewhere.

A reader (the report's timeline, the Slack layout, run metrics) that waits for a kind nothing
sends shows nothing and fails no test; this scan of the source finds such a kind.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

from gameday.notes import Note
from gameday.notify import NOTICE_TYPES

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("gameday", "flows", "tasks", "orchestration")
#: Where the classes are defined (the unions name each of them).
DEFINITIONS = {REPO / "gameday" / "notes.py", REPO / "gameday" / "notify" / "notices.py"}
CLASSES = frozenset(c.__name__ for c in (*get_args(get_args(Note)[0]), *NOTICE_TYPES))


def modules() -> Iterator[tuple[Path, ast.Module]]:
    """Every module of the kit and the Prefect layer, parsed."""
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _annotations(tree: ast.Module) -> set[int]:
    """The ids of every node inside a type annotation (naming a type is not reading it)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        hints: list[ast.expr | None] = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            hints.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            hints.append(node.returns)
        for hint in hints:
            if hint is not None:
                found |= {id(n) for n in ast.walk(hint)}
    return found


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def constructed(tree: ast.Module) -> set[str]:
    """The note and notice classes a module builds."""
    return {name for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (name := _name(node.func)) in CLASSES}


def read(tree: ast.Module) -> set[str]:
    """The note and notice classes a module looks for (isinstance, match, a tuple of them)."""
    hints = _annotations(tree)
    calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {name for node in ast.walk(tree)
            if isinstance(node, ast.Name | ast.Attribute) and id(node) not in hints
            and id(node) not in calls and (name := _name(node)) in CLASSES}


def test_every_class_read_is_written() -> None:
    """Each note or notice class a reader matches on is constructed by some writer."""
    readers: dict[str, list[str]] = {}
    written: set[str] = set()
    for path, tree in modules():
        written |= constructed(tree)
        if path not in DEFINITIONS:
            for name in read(tree):
                readers.setdefault(name, []).append(str(path.relative_to(REPO)))
    unwritten = {name: where for name, where in readers.items() if name not in written}
    assert unwritten == {}


def test_the_scan_sees_the_readers() -> None:
    """The scan finds what the report, the Slack layout and run metrics read."""
    found: dict[str, set[str]] = {}
    for path, tree in modules():
        found[str(path.relative_to(REPO))] = read(tree)
    assert {"CancelledNote", "FaultVanishedNote", "SweptNote",
            "NoticeNote"} <= found["gameday/report/sections.py"]
    assert {"SummaryNotice", "BreachNotice", "WarningNotice"} <= found[
        "gameday/notify/slack_layout.py"]
    assert "SummaryNotice" in found["gameday/notify/pushgateway.py"]
