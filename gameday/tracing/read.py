"""Traces read back from the OTLP JSON lines files of a trace folder (``GAMEDAY_TRACE_DIR``).

Every process of a stack appends to its own file, a batch per line, at least every second; a
reader takes what is there. A line cut short by a crash or a concurrent append is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from gameday.tracing.otlp import SpanRecord, decode

#: The files written by ``export.FileSink``.
PATTERN = "*.otlp.jsonl"


def spans(folder: Path, keep: Callable[[SpanRecord], bool] | None = None,
          since: float = 0.0) -> list[SpanRecord]:
    """Every span in ``folder``'s files (those ``keep`` accepts), in start order. ``since``
    (epoch seconds) skips the files last written before then: a folder shared by many runs
    is read only as far as it can hold spans of the one asked about."""
    found: list[SpanRecord] = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            if since and path.stat().st_mtime < since:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict):
                found.extend(span for span in decode(document) if keep is None or keep(span))
    found.sort(key=lambda span: span.start_ns)
    return found


def trace(folder: Path, trace_id: str, since: float = 0.0) -> list[SpanRecord]:
    """The spans of one trace, in start order."""
    wanted = trace_id.lower()
    return spans(folder, lambda span: span.trace_id == wanted, since)


def wait_for_trace(folder: Path, trace_id: str, done: Callable[[list[SpanRecord]], bool],
                   timeout: float = 10.0, interval: float = 0.5,
                   since: float = 0.0) -> list[SpanRecord]:
    """The spans of ``trace_id`` once ``done`` says they are all there, or what is there after
    ``timeout`` seconds (spans reach the files within a second of ending, batched)."""
    deadline = time.monotonic() + timeout
    while True:
        found = trace(folder, trace_id, since)
        if done(found) or time.monotonic() >= deadline:
            return found
        time.sleep(interval)


def children(spans_: Iterable[SpanRecord], parent: SpanRecord) -> list[SpanRecord]:
    """The direct children of ``parent`` among ``spans_``."""
    return [span for span in spans_ if span.parent_id == parent.span_id]
